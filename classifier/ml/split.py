"""Validation splits that do not leak near-duplicate photos between train and validation.

Marketplaces are full of re-posted ads: the same photo, re-encoded or slightly cropped.
A random split puts copies on both sides and flatters the validation score, so photos
are first grouped by perceptual hash and whole groups go to one side.
"""

from __future__ import annotations

import numpy as np

# Hamming distance between 64-bit pHashes at or under which two photos count as copies.
NEAR_DUPLICATE_DISTANCE = 6


def hamming_distances(hashes: np.ndarray, one: int) -> np.ndarray:
    xor = np.bitwise_xor(hashes, np.uint64(one))
    return np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def near_duplicate_groups(
    hashes: list[int], max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> np.ndarray:
    """A group id per photo; photos linked by a chain of near-copies share one (union-find)."""
    values = np.array(hashes, dtype=np.uint64)
    parent = np.arange(len(values))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(values)):
        close = np.flatnonzero(hamming_distances(values[i + 1 :], int(values[i])) <= max_distance)
        for j in close + i + 1:
            parent[root(j)] = root(i)
    return np.array([root(i) for i in range(len(values))])


def group_split(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out): about ``fraction`` of each class held out, by whole groups."""
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        class_groups = np.unique(groups[labels == label])
        rng.shuffle(class_groups)
        wanted = max(1, round(fraction * np.sum(labels == label)))
        taken = 0
        for group in class_groups:
            if taken >= wanted:
                break
            members = (groups == group) & (labels == label) & ~held_out
            held_out |= members
            taken += int(members.sum())
    # A group whose copies carry different labels must not straddle the split either.
    held_out |= np.isin(groups, groups[held_out])
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def group_folds(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold (0..k-1) per photo for cross-validation (training's heads, the label-error
    check); near-copies (one group) share a fold. Groups are dealt largest first to the
    smallest fold so the folds come out even."""
    if k < 2:
        raise ValueError("at least two folds are needed")
    ids, sizes = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    order = order[np.argsort(-sizes[order], kind="stable")]
    totals = np.zeros(k, dtype=int)
    fold_of_group = {}
    for index in order:
        fold = int(totals.argmin())
        fold_of_group[ids[index]] = fold
        totals[fold] += sizes[index]
    return np.array([fold_of_group[group] for group in groups])


def held_out_by_content(sha256: str, percent: float) -> bool:
    """A fixed coin toss per photo: the first 32 bits of its sha256 as a share of 2**32."""
    return int(sha256[:8], 16) / 2**32 < percent / 100


def assign_held_out(
    new: list[tuple[str, int]],
    known_hashes: list[int],
    known_held_out: list[bool],
    percent: float,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> list[bool]:
    """Which of the ``new`` photos (sha256, pHash) join a held-out set, once and for all.

    A photo within ``max_distance`` of a known photo (or of an earlier new one) takes the
    nearest one's side, so that re-posts never straddle the split; any other photo is held
    out by ``held_out_by_content``, so that about ``percent`` % of the groups are.
    """
    hashes = np.zeros(len(known_hashes) + len(new), dtype=np.uint64)
    hashes[: len(known_hashes)] = np.array(known_hashes, dtype=np.uint64)
    held_out = list(known_held_out)
    count = len(known_hashes)
    for sha256, phash in new:
        side = held_out_by_content(sha256, percent)
        if count:
            distances = hamming_distances(hashes[:count], phash)
            nearest = int(distances.argmin())
            if distances[nearest] <= max_distance:
                side = held_out[nearest]
        hashes[count] = np.uint64(phash)
        held_out.append(side)
        count += 1
    return held_out[len(known_hashes) :]
