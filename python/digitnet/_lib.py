"""ctypes bindings to libdigitnet: finding the shared library, the C structs of digitnet.h, and the
signatures of the functions the package calls. The structs mirror include/digitnet.h field by field;
a change there needs the same change here."""

import ctypes
import os

N_CLASSES = 10  # DN_N_CLASSES

# dn_status, in the order of the enum.
STATUS_NAMES = ["DN_OK", "DN_ENOMEM", "DN_EIO", "DN_EFORMAT", "DN_ESHAPE", "DN_EARG", "DN_ENOTFOUND",
                "DN_ENAN", "DN_ELIMIT", "DN_ESTOPPED", "DN_ENET"]


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * 512)]


class Dataset(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int), ("h", ctypes.c_int), ("w", ctypes.c_int), ("c", ctypes.c_int),
                ("pixels", ctypes.POINTER(ctypes.c_uint8)),  # (n, h, w, c)
                ("labels", ctypes.POINTER(ctypes.c_uint8)),  # (n)
                ("raw_max", ctypes.c_int)]


class Shape(ctypes.Structure):
    _fields_ = [("h", ctypes.c_int), ("w", ctypes.c_int), ("c", ctypes.c_int)]


class LayerInfo(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_char_p), ("label", ctypes.c_char * 96), ("out", Shape), ("flat", ctypes.c_int),
                ("n_params", ctypes.c_size_t), ("n_trainable", ctypes.c_size_t)]


class EpochStats(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_int), ("loss", ctypes.c_double), ("accuracy", ctypes.c_double),
                ("val_loss", ctypes.c_double), ("val_accuracy", ctypes.c_double), ("seconds", ctypes.c_double),
                ("images_per_sec", ctypes.c_double), ("member", ctypes.c_int),
                ("threads", ctypes.c_int)]


BATCH_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                            ctypes.c_double, ctypes.c_double)
EPOCH_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(EpochStats))
MEMBER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)


class Augment(ctypes.Structure):
    _fields_ = [(name, ctypes.c_float) for name in
                ("shift", "rotate", "scale", "shear", "elastic", "elastic_sigma", "noise", "flip", "mixup", "prob")]


class TrainParams(ctypes.Structure):
    _fields_ = [("optimizer", ctypes.c_int), ("lr", ctypes.c_float), ("beta1", ctypes.c_float),
                ("beta2", ctypes.c_float), ("epsilon", ctypes.c_float), ("momentum", ctypes.c_float),
                ("epochs", ctypes.c_int), ("batch_size", ctypes.c_int), ("seed", ctypes.c_uint64),
                ("on_batch", BATCH_FN), ("on_epoch", EPOCH_FN), ("user", ctypes.c_void_p),
                # schedule and regularisation (all zero: training as before); the library reads them
                ("schedule", ctypes.c_int), ("warmup", ctypes.c_float), ("step_every", ctypes.c_int),
                ("step_gamma", ctypes.c_float), ("min_lr", ctypes.c_float), ("weight_decay", ctypes.c_float),
                ("label_smoothing", ctypes.c_float), ("patience", ctypes.c_int), ("ensemble", ctypes.c_int),
                ("augment", Augment),
                ("on_member", MEMBER_FN)]


class Metrics(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int), ("loss", ctypes.c_double), ("accuracy", ctypes.c_double),
                ("confusion", (ctypes.c_long * N_CLASSES) * N_CLASSES), ("support", ctypes.c_long * N_CLASSES),
                ("precision", ctypes.c_double * N_CLASSES), ("recall", ctypes.c_double * N_CLASSES),
                ("f1", ctypes.c_double * N_CLASSES), ("roc_auc", ctypes.c_double * N_CLASSES),
                ("precision_macro", ctypes.c_double), ("recall_macro", ctypes.c_double),
                ("f1_macro", ctypes.c_double), ("roc_auc_macro", ctypes.c_double)]


def _candidates():
    """Where libdigitnet is looked for, in order: $DIGITNET_LIB; the build/ directory of the source
    tree this package sits in (after `make`, with PYTHONPATH=python); the directory `make install`
    recorded in _paths.py; then the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache)."""
    places = []
    if os.environ.get("DIGITNET_LIB"):
        places.append(os.environ["DIGITNET_LIB"])
    here = os.path.dirname(os.path.abspath(__file__))
    places.append(os.path.join(here, os.pardir, os.pardir, "build", "libdigitnet.so"))
    try:
        from . import _paths
        places.append(os.path.join(_paths.LIBDIR, "libdigitnet.so.0"))
    except ImportError:
        pass
    places.append("libdigitnet.so.0")
    return places


def _load():
    tried = []
    for place in _candidates():
        if os.sep in place and not os.path.exists(place):
            tried.append(place + " (no such file)")
            continue
        try:
            return ctypes.CDLL(os.path.normpath(place) if os.sep in place else place)
        except OSError as e:
            tried.append("%s (%s)" % (place, e))
    raise ImportError("digitnet: cannot load libdigitnet; run `make` in the source tree, `make install`, "
                      "or set DIGITNET_LIB to the library's path. Tried: " + "; ".join(tried))


lib = _load()

_P = ctypes.POINTER
_net = ctypes.c_void_p  # dn_net *, opaque
_signatures = {
    "dn_version": (ctypes.c_char_p, []),
    "dn_status_str": (ctypes.c_char_p, [ctypes.c_int]),
    "dn_set_threads": (None, [ctypes.c_int]),
    "dn_data_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, _P(Dataset), _P(Dataset), _P(Error)]),
    "dn_dataset_free": (None, [_P(Dataset)]),
    "dn_net_parse": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint64, _P(_net), _P(Error)]),
    "dn_net_load_spec": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_uint64, _P(_net), _P(Error)]),
    "dn_net_free": (None, [_net]),
    "dn_net_spec": (ctypes.c_char_p, [_net]),
    "dn_net_input_shape": (Shape, [_net]),
    "dn_net_n_classes": (ctypes.c_int, [_net]),
    "dn_net_layer_count": (ctypes.c_int, [_net]),
    "dn_net_param_count": (ctypes.c_size_t, [_net]),
    "dn_net_trainable_count": (ctypes.c_size_t, [_net]),
    "dn_net_layer_info": (ctypes.c_int, [_net, ctypes.c_int, _P(LayerInfo)]),
    "dn_net_raw_max": (ctypes.c_int, [_net]),
    "dn_net_set_raw_max": (ctypes.c_int, [_net, ctypes.c_int]),
    "dn_net_set_note": (ctypes.c_int, [_net, ctypes.c_char_p, ctypes.c_char_p, _P(Error)]),
    "dn_net_check_input": (ctypes.c_int, [_net, Shape, _P(Error)]),
    "dn_net_predict": (ctypes.c_int, [_net, _P(ctypes.c_float), ctypes.c_int, _P(ctypes.c_float), _P(Error)]),
    "dn_train_default_params": (TrainParams, []),
    "dn_train": (ctypes.c_int, [_net, _P(Dataset), _P(Dataset), _P(TrainParams), _P(Error)]),
    "dn_net_history": (_P(EpochStats), [_net, _P(ctypes.c_int)]),
    "dn_metrics_compute": (ctypes.c_int, [_P(ctypes.c_float), _P(ctypes.c_uint8), ctypes.c_int, _P(Metrics),
                                          _P(Error)]),
    "dn_model_save": (ctypes.c_int, [_net, ctypes.c_char_p, _P(Error)]),
    "dn_model_load": (ctypes.c_int, [ctypes.c_char_p, _P(_net), _P(Error)]),
    "dn_net_ensemble_size": (ctypes.c_int, [_net]),
}
for _name, (_restype, _argtypes) in _signatures.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
