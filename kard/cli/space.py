"""`python -m kard restore`: refill an annotation store from a snapshot the app's sync pushed.

    python -m kard restore --repo alice/kard-annotations                  # into the app's store
    python -m kard restore --repo alice/kard-annotations --db restored.db
    python -m kard restore --from downloaded-snapshot/ --db restored.db  # a folder or its revisions.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore", help="refill an empty annotation store from a snapshot pushed by the app's sync",
        description="Write every revision of a KARD Studio snapshot (revisions.jsonl) into an empty or new "
                    "annotation database, keeping ids, revision numbers and times. A private repo needs "
                    "HF_TOKEN (or `hf auth login`).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", help="dataset repo owner/name (the app's KARD_SYNC_REPO)")
    source.add_argument("--from", dest="source", type=Path, help="a snapshot folder or its revisions.jsonl")
    parser.add_argument("--db", type=Path, default=None,
                        help="annotation database to fill (default: the app's, KARD_ANNOTATIONS_DB or "
                             "/data/kard-studio/annotations.db on a Space with storage)")
    parser.set_defaults(func=run_restore)


def run_restore(args: argparse.Namespace) -> int:
    from kard.config import check_repo_id, default_annotations_db
    from kard.space_sync import restore_store

    db = args.db or default_annotations_db()
    repo = check_repo_id(args.repo, "--repo") if args.repo else None
    restored = restore_store(db, repo_id=repo, source=args.source)
    print(f"restored {restored} revision(s) into {db}")
    return 0
