"""The stacks CI deploys and the order a release travels through them, declared once.

Everything that names them reads this module: ``release changed`` (which stacks a merge
deploys, the program change reaching :data:`FIRST_STACK` first), ``release status`` and
``ci dispatch`` (a promotion's source is the stack before its target). The workflows cannot
import Python, so ``tests/infra/tools/release/test_release_stacks.py`` checks that their stack
choices and matrices (``release.yml``'s ``stack`` input, ``pr.yml``'s preview matrix,
``main.yml``'s pin target) equal it. Adding a stack (a second region, say) is its
``Pulumi.<stack>.yaml``, its place here and in those lists (the test names each one that
differs), and its GitHub environments (docs/ci.md).

``dev`` is not here: it is the local cluster's stack, never deployed by CI.
"""

from __future__ import annotations

from infra.errors import ReleaseError

#: The stacks CI deploys, in promotion order: a release reaches each one from the one before.
PROMOTION_PATH: tuple[str, ...] = ("staging", "prod")

#: Where a change to the program or a new image reaches first; later stacks get it by release.
FIRST_STACK = PROMOTION_PATH[0]


def source_of(target: str) -> str:
    """The stack a promotion to ``target`` takes its image from: the one before it on the path."""
    if target not in PROMOTION_PATH:
        raise ReleaseError(f"{target!r} is not on the promotion path {' → '.join(PROMOTION_PATH)}")
    index = PROMOTION_PATH.index(target)
    if index == 0:
        raise ReleaseError(f"{target} is the first stack of the promotion path; nothing promotes to it")
    return PROMOTION_PATH[index - 1]
