"""``python -m crewai_rust memory {stats,import-lancedb,check,copy}``.

A store is named by a directory (the SQLite store there, or a LanceDB table to
read) or by a ``postgresql://`` URL (``?namespace=…`` or ``--namespace`` picks
the schema).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="memory_command", required=True)
    stats = sub.add_parser("stats", help="records, dimension, scopes and size of a store")
    stats.add_argument("path", nargs="?", help="store directory or postgresql:// URL (default: CrewAI's memory directory)")
    stats.add_argument("--namespace", help="with a URL: the store's schema (default: crewai_memory)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    copy = sub.add_parser("copy", help="copy every record from SRC to DST (SQLite or LanceDB directory, or PostgreSQL URL)")
    copy.add_argument("src", help="a store directory (crewai_rust SQLite, else its memories.lance) or a postgresql:// URL")
    copy.add_argument("dst", help="a store directory or a postgresql:// URL")
    copy.add_argument("--src-namespace", help="schema of a PostgreSQL SRC")
    copy.add_argument("--dst-namespace", help="schema of a PostgreSQL DST")
    copy.add_argument("--lancedb", action="store_true", help="write DST as CrewAI's LanceDB table (a directory)")
    copy.add_argument("--merge", action="store_true", help="copy into a DST that already holds records (same ids are replaced)")
    imp = sub.add_parser("import-lancedb", help="copy a LanceDB memory table into the store at PATH")
    imp.add_argument("path", help="directory holding memories.lance (the store is created there)")
    imp.add_argument("--table", default="memories", help="LanceDB table name (default: memories)")
    check = sub.add_parser(
        "check", help="verify a store (rows decode, one dimension, index and change log agree with the table) "
        "and list quarantined records; --repair mends them",
    )
    check.add_argument("path", nargs="?", help="store directory or postgresql:// URL (default: CrewAI's memory directory)")
    check.add_argument("--namespace", help="with a URL: the store's schema (default: crewai_memory)")
    check.add_argument("--repair", action="store_true", help="put back every quarantined record that can be mended")


def run(args: argparse.Namespace) -> int:
    from . import RustMemoryStorage
    from ._lancedb_import import import_lancedb, lancedb_table_present

    if args.memory_command == "import-lancedb":
        path = Path(args.path)
        if not lancedb_table_present(path, args.table):
            print(f"no LanceDB table {args.table!r} in {path}")
            return 1
        store = RustMemoryStorage(path, import_lancedb=False)
        try:
            count = import_lancedb(store, path, args.table)
            print(f"imported {count} records into {store.db_path} ({store.count()} records now)")
        finally:
            store.close()
        return 0

    if args.memory_command == "copy":
        from ._copy import CopyError, copy_store

        try:
            print(copy_store(args.src, args.dst, src_namespace=args.src_namespace,
                             dst_namespace=args.dst_namespace, lancedb=args.lancedb, merge=args.merge))
        except CopyError as exc:
            print(f"memory copy: {exc}")
            return 1
        return 0

    from ._persistence import DB_FILENAME
    from ._seam import is_url
    from ._storage import default_memory_dir

    if args.memory_command == "stats" and is_url(args.path):
        return _stats_url(args)
    if args.memory_command == "check" and is_url(args.path):
        return _check_url(args)
    path = Path(args.path) if args.path else default_memory_dir()
    if not (path / DB_FILENAME).exists():
        print(f"no crewai_rust memory store in {path}")
        return 1
    if args.memory_command == "check":
        from ._check import check

        return check(path, repair=args.repair)
    store = RustMemoryStorage(path, import_lancedb=False)
    try:
        info = store.stats()
    finally:
        store.close()
    _print_stats(info, args.json)
    return 0


def _stats_url(args: argparse.Namespace) -> int:
    from . import RustMemoryStorage
    from ._pg_persistence import store_exists

    if not store_exists(args.path, args.namespace):
        from .._postgres import redact

        print(f"no crewai_rust memory store at {redact(args.path)} (namespace {args.namespace or 'default'})")
        return 1
    store = RustMemoryStorage(url=args.path, namespace=args.namespace, import_lancedb=False)
    try:
        info = store.stats()
    finally:
        store.close()
    _print_stats(info, args.json)
    return 0


def _check_url(args: argparse.Namespace) -> int:
    from ._check import check
    from ._pg_persistence import store_exists

    if not store_exists(args.path, args.namespace):
        from .._postgres import redact

        print(f"no crewai_rust memory store at {redact(args.path)} (namespace {args.namespace or 'default'})")
        return 1
    return check(args.path, namespace=args.namespace, repair=args.repair)


def _print_stats(info: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(f"store:      {info['path']}")
        print(f"records:    {info['records']}")
        print(f"dimension:  {info['vector_dim']}")
        print(f"size:       {info['file_bytes'] / 1e6:.2f} MB")
        print(f"scopes:     {len(info['scopes'])}")
        for scope in info["scopes"][:50]:
            print(f"  {scope}")
