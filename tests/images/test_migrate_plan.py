"""Which images a migration copies for given trust data (:func:`signed_images`, pure)."""

from __future__ import annotations

from tests.helpers.simulator import GUN, NOW, RepositorySimulator, target_meta
from trustbox.client.images.migrate import signed_images
from trustbox.tuf.metadata import FileMeta
from trustbox.tuf.verify import TrustedCollection


def _collection(b: RepositorySimulator) -> TrustedCollection:
    tc = TrustedCollection(GUN, b.docs["root"], NOW, tofu=True)
    tc.update_timestamp(b.docs["timestamp"])
    tc.update_snapshot(b.docs["snapshot"])
    tc.update_targets(b.docs["targets"])
    tc.update_delegation("targets/releases", b.docs["targets/releases"])
    return tc


def test_released_roles_win_the_tag_and_other_digests_are_copied_by_digest() -> None:
    b = RepositorySimulator()
    b.make_root()
    b.make_targets(releases=True, targets={"v1": target_meta(0xA1, 500), "only-targets": target_meta(0xA2, 600),
                    "not a tag!": target_meta(0xA3, 700), "sha512-only": FileMeta(10, {"sha512": b"\x01" * 64})})
    b.make_releases({"v1": target_meta(0xB1, 800), "v2": target_meta(0xB2, 900)})
    b.refresh()
    plan = signed_images(_collection(b))
    got = [(r.tag, r.reference, r.expected.size if r.expected else None) for r in plan.requests]
    d = lambda byte: "sha256:" + bytes([byte]).hex() * 32  # noqa: E731
    assert got == [
        ("only-targets", d(0xA2), 600),
        ("v1", d(0xB1), 800),  # targets/releases first, as docker pulls
        ("v2", d(0xB2), 900),
        (None, d(0xA1), 500),  # the targets role's own v1: copied by digest, signatures name it
        (None, d(0xA3), 700),  # a target name that cannot be a tag
    ]
    assert sorted(plan.not_images) == ["not a tag! (not a valid tag: copied by digest)", "sha512-only (targets: no sha256)"]
