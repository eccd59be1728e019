import asyncio, sys, json, statistics, tempfile
from pathlib import Path
from thunderline.obs import metrics
from thunderline.config import load_settings
from thunderline.runtime import Runtime
from thunderline.classify import iter_candidates

raw = {}
def wrap(name, hist):
    orig_labels = hist.labels if hist._labelnames else None
    if orig_labels is None:
        o = hist.observe
        def obs(v, *a, **k):
            raw.setdefault(name, []).append(v); return o(v, *a, **k)
        hist.observe = obs
    else:
        def labels(*a, **k):
            child = orig_labels(*a, **k)
            if not getattr(child, "_wrapped", False):
                o = child.observe
                def obs(v, *aa, **kk):
                    raw.setdefault(name, []).append(v); return o(v, *aa, **kk)
                child.observe = obs; child._wrapped = True
            return child
        hist.labels = labels
for n in ["MAGIKA_CLASSIFY_DURATION","SPACY_PROCESS_DURATION","ONNX_INFER_DURATION","VOXEL_BUILD_DURATION","STAGE_DURATION"]:
    wrap(n, getattr(metrics, n))

async def main():
    home = Path(tempfile.mkdtemp())
    s = load_settings(home=home, onnx_enabled=True)
    async with Runtime(s) as rt:
        for rep in range(3):
            await rt.submit_files(iter_candidates([Path(sys.argv[1])], recursive=True))
        await rt.wait_idle(600)
asyncio.run(main())
out = {}
for k, v in raw.items():
    v = sorted(v); q = lambda p: v[min(len(v)-1, int(p*len(v)))]
    out[k] = dict(n=len(v), min=v[0], p50=q(.5), p95=q(.95), p99=q(.99), max=v[-1])
print(json.dumps(out, indent=1))
