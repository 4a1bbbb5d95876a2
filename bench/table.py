"""Prints the benchmark table (Markdown) from digitnet's and PyTorch's JSON lines."""
import json
import os
import platform
import sys


def load(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


dn, pt = load(sys.argv[1]), load(sys.argv[2])


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


print(f"\nMachine: {cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}\n")
print("| measurement | digitnet | PyTorch | ratio |")
print("| --- | ---: | ---: | ---: |")


def row(label, mine, theirs, fmt="{:,.0f}", higher_better=True):
    a = fmt.format(mine) if mine is not None else "-"
    b = fmt.format(theirs) if theirs is not None else "-"
    ratio = "-"
    if mine and theirs:
        ratio = f"{(mine / theirs if higher_better else theirs / mine):.1f}x"
    print(f"| {label} | {a} | {b} | {ratio} |")


for net, label in (("mnist", "MNIST net (Fashion-MNIST 60k, batch 64)"), ("optdigits", "optdigits net (4,496 rows, batch 128)")):
    t2 = find(dn, net=net, what="train", threads=2)
    t1 = find(dn, net=net, what="train", threads=1)
    p2 = find(pt, net=net, what="train")
    row(f"{label}: training images/s, 2 threads", t2 and t2["images_per_sec"], p2 and p2["images_per_sec"])
    row(f"{label}: training images/s, 1 thread", t1 and t1["images_per_sec"], None)
    if t1 and t2:
        print(f"| {label}: thread scaling 2 vs 1 | {t2['images_per_sec'] / t1['images_per_sec']:.2f}x | | |")
    for t in (t2, t1):
        ep = t and t.get("epoch_images_per_sec")
        if ep and len(ep) >= 2:
            print(f"| {label}: last epoch ({len(ep)}) vs best, {t['threads']} thread{'s' if t['threads'] > 1 else ''} "
                  f"| {100 * ep[-1] / max(ep):.0f}% | | |")
    if net == "optdigits" and t2:
        runs = t2.get("runs_seconds") or [t2["seconds"]]
        fastest = f" (fastest of {len(runs)}: {', '.join(f'{s:.2f}' for s in runs)})" if len(runs) > 1 else ""
        row(f"{label}: {t2['epochs']} epochs, seconds{fastest}", t2["seconds"], p2 and p2["seconds"], "{:.1f}", False)
    i = find(dn, net=net, what="infer")
    pi = find(pt, net=net, what="infer")
    row(f"{label}: inference images/s, batch 1,000", i and i["images_per_sec"], pi and pi["images_per_sec"])
    row(f"{label}: single-image latency median, us", i and i["latency_median_us"], pi and pi["latency_median_us"], "{:.1f}", False)
    row(f"{label}: single-image latency p99, us", i and i["latency_p99_us"], pi and pi["latency_p99_us"], "{:.1f}", False)
rss = find(dn, what="peak_rss_mb")
if rss:
    print(f"| peak resident memory, training on 60k images, MB | {rss['value']:.0f} | | |")
