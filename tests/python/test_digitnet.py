"""The Python package (python/digitnet) against the C library and the digitnet command.

Run from the project root with PYTHONPATH=python and DIGITNET=build/digitnet (make python-test). Training
stays short: optdigits for two epochs, or a slice of mnist-10k."""

import json
import os
import subprocess
import threading

import numpy as np
import pytest

import digitnet

CLI = os.environ.get("DIGITNET", "build/digitnet")
EPOCHS, BATCH, SEED, VAL = 2, 128, 3, 0.1


def cli(*args):
    """Runs the digitnet command with --json and returns the parsed document."""
    out = subprocess.run([CLI, *args, "--json", "--threads", "1"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def optdigits():
    return digitnet.load_dataset("optdigits")


@pytest.fixture(scope="module")
def trained(optdigits, tmp_path_factory):
    """A model trained in Python, and the path where it was saved. One thread and OpenBLAS on one
    thread, as `digitnet ... --threads 1` runs: OpenBLAS's own threads round the dense layers'
    gradients differently, so without this the models agree only to about 1e-9."""
    digitnet.set_threads(1)
    xtr, ytr, _, _ = optdigits
    m = digitnet.train("models/optdigits.cnn", xtr, ytr, epochs=EPOCHS, batch=BATCH, seed=SEED, val_split=VAL)
    path = tmp_path_factory.mktemp("model") / "py.safetensors"
    m.save(path)
    return m, path


def test_version():
    assert digitnet.version() == digitnet.__version__


def test_load_dataset_arrays():
    xtr, ytr, xte, yte = digitnet.load_dataset("mnist-10k")
    assert xtr.shape == (10000, 28, 28) and xtr.dtype == np.uint8
    assert ytr.shape == (10000,) and ytr.dtype == np.int64
    assert xte.shape == (10000, 28, 28) and yte.shape == (10000,)
    assert xtr.max() == 255 and set(np.unique(ytr)) == set(range(10))
    # The first MNIST test images are 7, 2, 1, 0, 4 (mnist-10k's test set is MNIST's).
    assert yte[:5].tolist() == [7, 2, 1, 0, 4]


def test_optdigits_arrays(optdigits):
    xtr, ytr, xte, yte = optdigits
    assert xtr.shape == (3823, 8, 8) and xte.shape == (1797, 8, 8)
    assert xtr.max() == 16


def test_training_equals_the_cli(trained, optdigits, tmp_path):
    """The same data, seed and settings train the same model as `digitnet train`, epoch by epoch."""
    m, _ = trained
    out = tmp_path / "cli.safetensors"
    j = cli("train", "--data", "optdigits", "--model", "models/optdigits.cnn", "--epochs", str(EPOCHS),
            "--batch", str(BATCH), "--seed", str(SEED), "--val-split", str(VAL), "--out", str(out))
    # cJSON prints 15 significant digits: equal to that; the saved weights below, bit for bit.
    assert [h["loss"] for h in j["history"]] == pytest.approx([h["loss"] for h in m.history], rel=1e-14, abs=0)
    assert [h["val_accuracy"] for h in j["history"]] == pytest.approx([h["val_accuracy"] for h in m.history],
                                                                      rel=1e-14, abs=0)
    xte = optdigits[2]
    assert np.array_equal(digitnet.load(out).predict_proba(xte), m.predict_proba(xte))


def test_cli_predicts_what_python_predicts(trained, optdigits):
    """A model trained in Python, saved, then loaded by the CLI: the same digit and the same
    probabilities for every test image."""
    m, path = trained
    same_as_cli(m, path, "optdigits", optdigits[2])


def same_as_cli(m, path, data, xte):
    """`digitnet predict` of the model saved at path gives m's digits and probabilities on the first
    rows of the data set's test files."""
    rows = cli("predict", "--model", str(path), "--data", data, "--index", "0", "--count", str(len(xte)),
               "--top", "10")
    probs = m.predict_proba(xte)
    assert [r["digit"] for r in rows] == m.predict(xte).tolist()
    cli_probs = np.zeros_like(probs)
    for i, r in enumerate(rows):
        for t in r["top"]:
            cli_probs[i, t["digit"]] = t["probability"]
    assert np.array_equal(cli_probs, probs)


def test_evaluate_equals_cli_eval(trained, optdigits):
    m, path = trained
    _, _, xte, yte = optdigits
    ours = m.evaluate(xte, yte)
    theirs = cli("eval", "--model", str(path), "--data", "optdigits")
    assert ours.keys() == theirs.keys()
    assert ours["n"] == 1797 and ours["confusion"] == theirs["confusion"]
    for key in ("accuracy", "loss", "precision_macro", "recall_macro", "f1_macro", "roc_auc_macro"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-12), key
    for a, b in zip(ours["per_class"], theirs["per_class"]):
        assert a.keys() == b.keys() and a["support"] == b["support"]
        assert a["f1"] == pytest.approx(b["f1"], rel=1e-12)
    assert ours["accuracy"] == np.mean(m.predict(xte) == yte)


def test_save_load_summary(trained, optdigits, tmp_path):
    m, path = trained
    xte = optdigits[2]
    again = digitnet.load(path)
    assert np.array_equal(again.predict_proba(xte), m.predict_proba(xte))
    again.save(tmp_path / "r2.safetensors")
    assert np.array_equal(digitnet.load(tmp_path / "r2.safetensors").predict_proba(xte[:50]), m.predict_proba(xte[:50]))
    text = subprocess.run([CLI, "summary", str(path)], check=True, capture_output=True, text=True).stdout
    assert again.summary() == text.rstrip("\n")
    assert "Total params: 102,794" in again.summary()


def test_input_forms_agree(trained, optdigits):
    """uint8, other integers and floats of the same raw values, (N,H,W) or (N,H,W,1): the same
    probabilities, bit for bit."""
    m, _ = trained
    x = optdigits[2][:200]
    p = m.predict_proba(x)
    assert p.dtype == np.float32 and p.shape == (200, 10)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    for other in (x.astype(np.float64), x.astype(np.float32), x.astype(np.int64), x[..., np.newaxis],
                  np.asfortranarray(x), x.tolist()):
        assert np.array_equal(m.predict_proba(other), p)
    assert m.predict(x).dtype == np.int64


def test_threads_predict_at_once(trained, optdigits):
    """Several Python threads predicting with one model at the same time get what one thread gets."""
    m, _ = trained
    xte = optdigits[2]
    want = m.predict_proba(xte)
    results, errors = {}, []

    def work(k):
        try:
            for rep in range(5):
                lo = (k * 97 + rep * 211) % (len(xte) - 300)
                results[(k, rep)] = (lo, m.predict_proba(xte[lo:lo + 300]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20
    for lo, got in results.values():
        assert np.array_equal(got, want[lo:lo + 300])


def test_mnist_slice_learns(tmp_path):
    """The interface of the README on a slice of mnist-10k: a short run learns the digits, and the CLI
    predicts what it predicts (pixels 0..255 scaled as the library scales them)."""
    xtr, ytr, xte, yte = digitnet.load_dataset("mnist-10k")
    m = digitnet.train("models/mnist.cnn", xtr[:3000], ytr[:3000], epochs=2, batch=64, seed=1, val_split=0.1)
    assert len(m.history) == 2 and not np.isnan(m.history[-1]["val_accuracy"])
    e = m.evaluate(xte[:1000], yte[:1000])
    assert e["n"] == 1000 and e["accuracy"] >= 0.85, e["accuracy"]
    m.save(tmp_path / "r2.safetensors")
    same_as_cli(m, tmp_path / "r2.safetensors", "mnist-10k", xte[:300])


def test_ensemble(optdigits, tmp_path):
    """ensemble=3 trains three members (seeds 5, 6, 7) whose probabilities the model averages: member
    m is the network a single run with seed 5 + m trains. Saved and loaded, it predicts the same; the
    CLI's eval of the file gives the same accuracy."""
    digitnet.set_threads(1)
    xtr, ytr, xte, yte = optdigits
    m = digitnet.train("models/optdigits.cnn", xtr[:600], ytr[:600], epochs=1, batch=BATCH, seed=5, ensemble=3)
    assert m.ensemble_size == 3 and "Ensemble of 3 members" in m.summary()
    singles = [digitnet.train("models/optdigits.cnn", xtr[:600], ytr[:600], epochs=1, batch=BATCH, seed=5 + k)
               for k in range(3)]
    assert all(s.ensemble_size == 1 for s in singles)
    p = m.predict_proba(xte[:200])
    mean = (singles[0].predict_proba(xte[:200]) + singles[1].predict_proba(xte[:200])
            + singles[2].predict_proba(xte[:200])) / np.float32(3)
    assert np.array_equal(p, mean)
    m.save(tmp_path / "ens.safetensors")
    loaded = digitnet.load(tmp_path / "ens.safetensors")
    assert loaded.ensemble_size == 3
    assert np.array_equal(loaded.predict_proba(xte[:200]), p)
    assert len(loaded.history) == 1 and loaded.history[0]["member"] == 0


# ---------------------------------------------------------------- bad input


def test_wrong_image_shape_carries_the_library_message(trained):
    m, _ = trained
    with pytest.raises(digitnet.Error, match=r"expects 8x8x1 images but the input data is 28x28x1") as e:
        m.predict(np.zeros((3, 28, 28), np.uint8))
    assert e.value.status == "DN_ESHAPE"
    with pytest.raises(digitnet.Error, match="expects 8x8x1"):
        m.predict_proba(np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        m.predict(np.zeros((8, 8), np.uint8))


def test_wrong_dtype(trained):
    m, _ = trained
    with pytest.raises(TypeError, match="raw pixel values"):
        m.predict(np.zeros((2, 8, 8), bool))
    with pytest.raises(TypeError, match="raw pixel values"):
        m.predict(np.array([["a"] * 8] * 8 * 2).reshape(2, 8, 8))
    with pytest.raises(TypeError, match="labels"):
        m.evaluate(np.zeros((2, 8, 8), np.uint8), np.array([0.5, 1.0]))


def test_missing_files():
    with pytest.raises(digitnet.Error, match=r"/no/such/model\.safetensors: cannot open") as e:
        digitnet.load("/no/such/model.safetensors")
    assert e.value.status == "DN_EIO"
    with pytest.raises(digitnet.Error, match="no/such/spec.cnn"):
        digitnet.train("no/such/spec.cnn", np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.int64), epochs=1)
    with pytest.raises(digitnet.Error) as e:
        digitnet.load_dataset("/no/such/dir")
    assert "/no/such/dir" in str(e.value)


def test_bad_training_input(optdigits):
    xtr, ytr, _, _ = optdigits
    with pytest.raises(ValueError, match="labels must be 0..9"):
        digitnet.train("models/optdigits.cnn", xtr[:10], np.full(10, 10), epochs=1)
    with pytest.raises(ValueError, match="shape"):
        digitnet.train("models/optdigits.cnn", xtr[:10], ytr[:9], epochs=1)
    with pytest.raises(ValueError, match="val_split"):
        digitnet.train("models/optdigits.cnn", xtr[:10], ytr[:10], epochs=1, val_split=0.999)
    with pytest.raises(digitnet.Error, match="expects 28x28x1 images but the training data is 8x8x1") as e:
        digitnet.train("models/mnist.cnn", xtr[:10], ytr[:10], epochs=1)
    assert e.value.status == "DN_ESHAPE"
    with pytest.raises(digitnet.Error, match=r"spec:2: unknown layer 'conv3d'"):
        digitnet.train("input 8x8x1\nconv3d 4 3x3\n", xtr[:10], ytr[:10], epochs=1)
