"""Gallery: storage and refusal of damaged files, exact search on both backends (own kernels and FAISS),
embedding checks, the model fingerprint. Saving and loading through a classifier: test_classify.py."""

from __future__ import annotations

import pytest
import torch

from audiosiam.errors import GalleryError, ParameterError
from audiosiam.fewshot.gallery import Gallery, model_fingerprint


def tiny_model(seed: int) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Linear(4, 3)


def test_corrupt_or_missing_gallery_is_explained(tmp_path):
    bad = tmp_path / "bad.asg"
    bad.write_bytes(b"not a gallery at all")
    with pytest.raises(GalleryError, match="not a readable audiosiam gallery"):
        Gallery.load(bad)
    with pytest.raises(GalleryError, match="no such gallery file"):
        Gallery.load(tmp_path / "missing.asg")


@pytest.mark.parametrize("n", [50, 400])
def test_gallery_search_is_exact_on_both_backends(n):
    g = torch.Generator().manual_seed(n)
    emb = torch.randn(n, 16, generator=g)
    queries = torch.randn(7, 16, generator=g)
    own = Gallery(16, "x").add(emb, [str(i % 5) for i in range(n)])
    faiss_backed = Gallery(16, "x", faiss_threshold=10).add(emb, [str(i % 5) for i in range(n)])
    expected = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(emb, dim=1).T
    top = expected.topk(5, dim=1)
    for gallery in (own, faiss_backed):
        sims, idx = gallery.search(queries, 5)
        torch.testing.assert_close(sims, top.values, atol=1e-5, rtol=0)
        assert torch.equal(idx, top.indices)


def test_gallery_rejects_bad_embeddings():
    g = Gallery(4, "x")
    with pytest.raises(ParameterError, match=r"expected shape \(N, 4\)"):
        g.add(torch.ones(2, 3), ["a", "b"])
    with pytest.raises(ParameterError, match="NaN or Inf"):
        g.add(torch.tensor([[float("nan"), 0, 0, 1.0]]), ["a"])
    with pytest.raises(ParameterError, match="all zeros"):
        g.add(torch.zeros(1, 4), ["a"])
    with pytest.raises(ParameterError, match="k=9"):
        g.add(torch.eye(4), list("abcd")).search(torch.ones(1, 4), 9)


def test_model_fingerprint_tracks_weights():
    a, b = tiny_model(0), tiny_model(0)
    assert model_fingerprint(a) == model_fingerprint(b)
    assert model_fingerprint(a) != model_fingerprint(tiny_model(1))


@pytest.mark.slow
def test_two_processes_saving_one_gallery_never_corrupt_it(tmp_path):
    """Real processes, each saving its own gallery to the same path 15 times: every save succeeds and
    the file is always one of the two complete galleries."""
    import subprocess
    import sys

    path = tmp_path / "shared.asg"
    code = (
        "import sys, torch\n"
        "from audiosiam.fewshot.gallery import Gallery\n"
        "g = Gallery(4, 'x').add(torch.eye(4) + float(sys.argv[2]), list('abcd'))\n"
        "for _ in range(15):\n"
        "    g.save(sys.argv[1])\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(i)], stderr=subprocess.PIPE, text=True)
        for i in (0, 1)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    loaded = Gallery.load(path)
    assert len(loaded) == 4 and loaded.labels == list("abcd")
    assert [p.name for p in tmp_path.iterdir()] == ["shared.asg"]  # no temporary file left


def test_every_spelling_of_a_gallery_is_one_file(tmp_path):
    from audiosiam.fewshot.gallery import gallery_path

    g = Gallery(4, "fp")
    g.add(torch.nn.functional.normalize(torch.randn(3, 4), dim=1), ["a", "b", "a"])
    written = g.save(tmp_path / "sub" / ".." / "g")  # no suffix, a detour: g.asg
    assert written == (tmp_path / "g.asg").resolve() and written.is_file()
    assert len(Gallery.load(tmp_path / "g")) == 3  # read back by the spelling it was written with
    link = tmp_path / "link.asg"
    link.symlink_to(written)
    g.add(torch.nn.functional.normalize(torch.randn(1, 4), dim=1), ["c"])
    g.save(link)  # through the link: the target changes, the link stays a link
    assert link.is_symlink() and len(Gallery.load(written)) == 4
    spellings = {gallery_path(p) for p in (tmp_path / "g", tmp_path / "g.asg", link, tmp_path / "sub" / ".." / "g")}
    assert spellings == {written}  # one lock for all of them
