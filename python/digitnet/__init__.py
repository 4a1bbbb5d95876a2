"""digitnet for Python: train, evaluate and run digitnet's convolutional networks on NumPy arrays.

    import digitnet
    xtr, ytr, xte, yte = digitnet.load_dataset("mnist-10k")   # uint8 images (N,H,W), int64 labels
    m = digitnet.train("models/mnist.cnn", xtr, ytr, epochs=10, batch=64, seed=1, val_split=0.1)
    m.predict_proba(xte)     # float32 (N,10)
    m.predict(xte)           # int64 (N,)
    m.evaluate(xte, yte)     # the dict `digitnet eval --json` prints
    m.save("r2.safetensors"); m = digitnet.load("r2.safetensors"); print(m.summary())

A thin layer over the C library libdigitnet (ctypes): the same training, the same model files and the
same numbers as the digitnet command. Images are raw pixel values, as the data sets store them (0..255
for MNIST, 0..16 for optdigits); the model divides them by its raw_max. Errors from the library raise
digitnet.Error carrying the library's message.
"""

import ctypes
import math
import os
import threading

import numpy as np

from . import _lib
from ._lib import lib

__version__ = "0.1.0"
__all__ = ["Error", "Model", "load_dataset", "train", "load", "version", "set_threads"]


class Error(Exception):
    """A failure reported by libdigitnet. str() is the library's message; .status its dn_status
    name ("DN_EIO", "DN_ESHAPE", ...)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _check(status, err):
    if status != 0:
        name = _lib.STATUS_NAMES[status] if 0 <= status < len(_lib.STATUS_NAMES) else str(status)
        message = err.msg.decode("utf-8", "replace") or lib.dn_status_str(status).decode()
        raise Error(name, message)


def _path(p):
    return os.fsencode(os.fspath(p))


def version():
    """The version of the C library loaded (dn_version)."""
    return lib.dn_version().decode()


def set_threads(n):
    """Threads for training and inference (0: all cores), as the digitnet command's --threads
    (dn_set_threads). Results do not depend on it."""
    lib.dn_set_threads(int(n))


def _arrays(d):
    """Copies a dn_dataset into (images, labels): uint8 (N,H,W) or (N,H,W,C), int64 (N,)."""
    shape = (d.n, d.h, d.w) if d.c == 1 else (d.n, d.h, d.w, d.c)
    if d.n == 0:
        return np.zeros(shape, np.uint8), np.zeros(0, np.int64)
    pixels = np.ctypeslib.as_array(d.pixels, shape=(d.n * d.h * d.w * d.c,)).reshape(shape).copy()
    labels = np.ctypeslib.as_array(d.labels, shape=(d.n,)).astype(np.int64)
    return pixels, labels


def load_dataset(name, data_dir=None):
    """Loads a data set by name ("optdigits", "mnist", "mnist-10k", "fashion-mnist") or directory,
    looked up as the digitnet command does (data_dir, $DIGITNET_DATA, ~/.cache/digitnet, ...).
    Returns (train_images, train_labels, test_images, test_labels): uint8 images (N,H,W) of raw pixel
    values, int64 labels. The test arrays are empty when the set has no test files."""
    train, test, err = _lib.Dataset(), _lib.Dataset(), _lib.Error()
    status = lib.dn_data_open(_path(name), _path(data_dir) if data_dir is not None else None,
                              ctypes.byref(train), ctypes.byref(test), ctypes.byref(err))
    try:
        _check(status, err)
        return _arrays(train) + _arrays(test)
    finally:
        lib.dn_dataset_free(ctypes.byref(train))
        lib.dn_dataset_free(ctypes.byref(test))


def _as_4d(x, what):
    """x as an ndarray (N, H, W, C) of integers or floats; a TypeError or ValueError otherwise."""
    x = np.asarray(x)
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError("%s must be an array of raw pixel values (uint8, integers or floats), not %s" % (what, x.dtype))
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise ValueError("%s must have shape (N, H, W) or (N, H, W, C), not %s" % (what, x.shape))
    return x


def _labels(y, n):
    y = np.asarray(y)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError("labels must be an array of integers 0..9, not %s" % y.dtype)
    if y.shape != (n,):
        raise ValueError("labels must have shape (%d,) to match the images, not %s" % (n, y.shape))
    if n and (y.min() < 0 or y.max() >= _lib.N_CLASSES):
        raise ValueError("labels must be 0..9; found %d" % (y.min() if y.min() < 0 else y.max()))
    return np.ascontiguousarray(y, dtype=np.uint8)


def _float_ptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class Model:
    """A network: trained by digitnet.train, or loaded by digitnet.load."""

    def __init__(self, handle, title="model"):
        self._net = ctypes.c_void_p(handle)
        self.title = title  # the name summary() prints: the file it was loaded from, or its spec
        # Training and saving take this lock. Predictions do not: dn_net_predict only reads the net,
        # so threads predict with one model at once (ctypes releases the GIL during the call).
        self._lock = threading.Lock()

    def __del__(self):
        self.close()

    def close(self, _free=lib.dn_net_free):
        """Frees the C network now (otherwise done when the object is collected). _free is bound at
        definition time: at interpreter exit the module's globals may already be gone."""
        net, self._net = getattr(self, "_net", None), None
        if net:
            _free(net)

    def _handle(self):
        if not self._net:
            raise ValueError("the model is closed")
        return self._net

    @property
    def input_shape(self):
        """(H, W, C) of the images the network takes."""
        s = lib.dn_net_input_shape(self._handle())
        return (s.h, s.w, s.c)

    @property
    def raw_max(self):
        """The divisor that maps raw pixel values to 0..1 (255 for MNIST, 16 for optdigits)."""
        return lib.dn_net_raw_max(self._handle())

    @property
    def ensemble_size(self):
        """The number of members whose probabilities predictions average (1: a single network)."""
        return lib.dn_net_ensemble_size(self._handle())

    @property
    def spec(self):
        """The network's spec text, in canonical form."""
        return lib.dn_net_spec(self._handle()).decode()

    @property
    def history(self):
        """One dict per epoch trained: epoch, loss, accuracy, val_loss, val_accuracy (NaN without
        validation), seconds, images_per_sec, member (0; an ensemble's history is member 0's),
        threads (the training steps' thread count; 0 in a history loaded from a file)."""
        n = ctypes.c_int(0)
        with self._lock:
            h = lib.dn_net_history(self._handle(), ctypes.byref(n))
            return [{k: getattr(h[i], k) for k, _ in _lib.EpochStats._fields_} for i in range(n.value)]

    def _scaled(self, x):
        """x (raw pixel values) as contiguous float32 (N, H, W, C) 0..1, checked against the net."""
        x = _as_4d(x, "images")
        err = _lib.Error()
        _check(lib.dn_net_check_input(self._handle(), _lib.Shape(*x.shape[1:]), ctypes.byref(err)), err)
        # The same arithmetic as the library's loaders (value * (1 / raw_max) in float32), so that the
        # same pixels give the same probabilities as the digitnet command, bit for bit.
        inv = np.float32(1.0) / np.float32(self.raw_max)
        return np.ascontiguousarray(x.astype(np.float32) * inv, dtype=np.float32)

    def predict_proba(self, x):
        """Class probabilities, float32 (N, 10), for images x of raw pixel values: uint8 or float,
        (N, H, W) or (N, H, W, 1)."""
        images = self._scaled(x)
        n = images.shape[0]
        probs = np.empty((n, _lib.N_CLASSES), np.float32)
        err = _lib.Error()
        _check(lib.dn_net_predict(self._handle(), _float_ptr(images), n, _float_ptr(probs), ctypes.byref(err)), err)
        return probs

    def predict(self, x):
        """The most probable digit of each image, int64 (N,)."""
        return np.argmax(self.predict_proba(x), axis=1).astype(np.int64)

    def evaluate(self, x, y):
        """Every metric on images x and labels y, as the dict `digitnet eval --json` prints: accuracy,
        loss, precision_macro, recall_macro, f1_macro, roc_auc_macro, n, confusion (rows = true
        class), per_class (class, precision, recall, f1, roc_auc, support). Undefined values
        (the AUC of a class without examples) are None, as null in the JSON."""
        probs = self.predict_proba(x)
        labels = _labels(y, probs.shape[0])
        m, err = _lib.Metrics(), _lib.Error()
        _check(lib.dn_metrics_compute(_float_ptr(probs), labels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                      probs.shape[0], ctypes.byref(m), ctypes.byref(err)), err)

        def num(v):
            return None if math.isnan(v) else v

        result = {k: num(getattr(m, k)) for k in ("accuracy", "loss", "precision_macro", "recall_macro",
                                                   "f1_macro", "roc_auc_macro")}
        result["n"] = m.n
        result["confusion"] = [[m.confusion[r][c] for c in range(_lib.N_CLASSES)] for r in range(_lib.N_CLASSES)]
        result["per_class"] = [{"class": c, "precision": num(m.precision[c]), "recall": num(m.recall[c]),
                                "f1": num(m.f1[c]), "roc_auc": num(m.roc_auc[c]), "support": m.support[c]}
                               for c in range(_lib.N_CLASSES)]
        return result

    def save(self, path):
        """Writes the model as a safetensors file that `digitnet eval/predict/serve` read."""
        err = _lib.Error()
        with self._lock:
            _check(lib.dn_model_save(self._handle(), _path(path), ctypes.byref(err)), err)

    def layers(self):
        """One dict per layer: kind, layer (its spec line), output_shape, params (as in the JSON of
        `digitnet summary --json`)."""
        out = []
        for i in range(lib.dn_net_layer_count(self._handle())):
            info = _lib.LayerInfo()
            lib.dn_net_layer_info(self._handle(), i, ctypes.byref(info))
            shape = (info.out.c,) if info.flat else (info.out.h, info.out.w, info.out.c)
            out.append({"kind": info.kind.decode(), "layer": info.label.decode(), "output_shape": shape,
                        "params": info.n_params})
        return out

    def summary(self):
        """The Keras-style table `digitnet summary` prints: layers, output shapes, parameter counts."""
        rule, double = "_" * 73, "=" * 73

        def shape_text(shape):
            return "(None, %s)" % ", ".join(str(d) for d in shape)

        lines = ['Model: "%s"' % self.title, rule, " %-36s %-22s %10s" % ("Layer (type)", "Output Shape", "Param #"),
                 double, " %-36s %-22s %10s" % ("input", shape_text(self.input_shape), "0")]
        for layer in self.layers():
            lines.append(" %-36s %-22s %10s" % (layer["layer"], shape_text(layer["output_shape"]),
                                                "{:,}".format(layer["params"])))
        total, trainable = lib.dn_net_param_count(self._handle()), lib.dn_net_trainable_count(self._handle())
        lines += [double, "Total params: {:,}".format(total), "Trainable params: {:,}".format(trainable),
                  "Non-trainable params: {:,}".format(total - trainable), rule]
        if self.ensemble_size > 1:
            lines.append("Ensemble of %d members averaging their probabilities; the table is member 0's"
                         % self.ensemble_size)
        return "\n".join(lines)

    def __repr__(self):
        return "<digitnet.Model input %dx%dx%d, %d layers>" % (self.input_shape + (lib.dn_net_layer_count(self._net),))


def load(path):
    """Loads a model file written by Model.save or `digitnet train --out`."""
    net, err = ctypes.c_void_p(), _lib.Error()
    _check(lib.dn_model_load(_path(path), ctypes.byref(net), ctypes.byref(err)), err)
    return Model(net.value, os.fsdecode(os.fspath(path)))


def _build(spec, seed):
    """A new network from a spec file, or from spec text (anything holding a newline)."""
    net, err = ctypes.c_void_p(), _lib.Error()
    if isinstance(spec, str) and "\n" in spec:
        status = lib.dn_net_parse(spec.encode(), b"spec", seed, ctypes.byref(net), ctypes.byref(err))
        title = "spec"
    else:
        status = lib.dn_net_load_spec(_path(spec), seed, ctypes.byref(net), ctypes.byref(err))
        title = os.fsdecode(os.fspath(spec))
    _check(status, err)
    return Model(net.value, title)


def _view(pixels, labels, start, n, raw_max):
    """A dn_dataset over rows [start, start + n) of contiguous arrays (which must outlive it)."""
    _, h, w, c = pixels.shape
    u8 = ctypes.POINTER(ctypes.c_uint8)
    return _lib.Dataset(n, h, w, c, ctypes.cast(pixels.ctypes.data + start * h * w * c, u8),
                        ctypes.cast(labels.ctypes.data + start, u8), raw_max)


def train(spec, x, y, epochs=10, batch=32, seed=1, val_split=0.0, optimizer="adam", lr=None, momentum=0.9,
          raw_max=None, verbose=False, ensemble=1):
    """Builds the network of `spec` (a .cnn file, or spec text) from `seed` and trains it on images x
    (uint8 raw pixel values, (N,H,W) or (N,H,W,1)) and labels y (integers 0..9), as
    `digitnet train --epochs --batch --seed --val-split` does: val_split validates on the last
    fraction of the rows, taken before shuffling (Keras' validation_split). raw_max (the pixel value
    that means full ink) defaults to 16 for 8x8 images (optdigits) and 255 otherwise. lr defaults to
    0.001 for Adam, 0.01 for SGD. verbose prints one line per epoch. ensemble=K > 1 trains K members
    with seeds seed, seed + 1, ... whose probabilities the model averages. Returns the trained Model."""
    images = _as_4d(x, "images")
    if not np.issubdtype(images.dtype, np.integer):
        if not np.array_equal(images, np.round(images)):
            raise ValueError("training images must be raw pixel values (whole numbers 0..255)")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError("training images must be raw pixel values 0..255")
    images = np.ascontiguousarray(images, dtype=np.uint8)
    n = images.shape[0]
    labels = _labels(y, n)
    if optimizer not in ("adam", "sgd"):
        raise ValueError("optimizer must be 'adam' or 'sgd', not %r" % (optimizer,))
    if raw_max is None:
        raw_max = 16 if images.shape[1:3] == (8, 8) else 255
    n_val = 0
    if val_split:
        # Keras: split_at = floor(n * (1 - f)); the rows from split_at on validate.
        n_val = n - int(math.floor(n * (1.0 - val_split)))
        if not 0.0 < val_split < 1.0 or n_val < 1 or n_val >= n:
            raise ValueError("val_split %g leaves no training or no validation rows" % val_split)

    model = _build(spec, seed)
    net = model._handle()
    err = _lib.Error()
    if lib.dn_net_set_raw_max(net, int(raw_max)) != 0:
        raise ValueError("raw_max must be 1..255, not %r" % (raw_max,))
    for key, value in (("val_split", "%g" % val_split), ("batch", str(batch)), ("epochs", str(epochs)),
                       ("optimizer", optimizer)):
        _check(lib.dn_net_set_note(net, key.encode(), value.encode(), ctypes.byref(err)), err)

    params = lib.dn_train_default_params()
    params.optimizer = 1 if optimizer == "sgd" else 0
    params.lr = lr if lr else (0.01 if optimizer == "sgd" else 0.001)
    params.momentum = momentum
    params.epochs, params.batch_size, params.seed = int(epochs), int(batch), int(seed)
    params.ensemble = int(ensemble)
    if verbose:
        def on_epoch(user, stats):
            s = stats.contents
            line = "Member %d: " % (s.member + 1) if ensemble > 1 else ""
            line += "Epoch %d/%d - %.2fs - loss: %.4f - accuracy: %.4f" % (s.epoch, epochs, s.seconds, s.loss,
                                                                        s.accuracy)
            if not math.isnan(s.val_loss):
                line += " - val_loss: %.4f - val_accuracy: %.4f" % (s.val_loss, s.val_accuracy)
            print(line, flush=True)
            return 0
        params.on_epoch = _lib.EPOCH_FN(on_epoch)  # kept alive by params until dn_train returns

    train_rows = _view(images, labels, 0, n - n_val, raw_max)
    val_rows = _view(images, labels, n - n_val, n_val, raw_max) if n_val else None
    with model._lock:
        status = lib.dn_train(net, ctypes.byref(train_rows), ctypes.byref(val_rows) if val_rows else None,
                              ctypes.byref(params), ctypes.byref(err))
    _check(status, err)
    return model
