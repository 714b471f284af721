"""`github-ueba <command> [key=value ...]`: the pipeline stages and the analyst's commands."""

from __future__ import annotations

import argparse
import os
import datetime
import logging
import sys
from typing import Any, Callable

from github_ueba.config import Config, ConfigError, load
from github_ueba.errors import UebaError

log = logging.getLogger("github_ueba")


def _stage(name: str) -> Callable[[Config], Any]:
    from github_ueba import stages

    return getattr(stages, name)


def _run_all(cfg: Config) -> None:
    for name in ("ingest", "features", "train", "detect"):
        result = _stage(name)(cfg)
        log.info("%s done in %s s", name, result.get("seconds", "?"))


def _show(cfg: Config, args: argparse.Namespace) -> None:
    from github_ueba.summary import print_summary

    print_summary(cfg, top=args.top)


def _kql_print(cfg: Config, args: argparse.Namespace) -> None:
    from github_ueba.sources.log_analytics import render_query

    print(render_query(cfg))


def _parse_day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise UebaError(f"day {text!r}: expected YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="github-ueba", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("GITHUB_UEBA_LOG_LEVEL"),
        help="DEBUG, INFO, WARNING (default: env GITHUB_UEBA_LOG_LEVEL, else INFO on a terminal and "
        "WARNING in CI/non-TTY logs, so progress lines show only where someone watches)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. source=files source.path=exports/")
        p.add_argument("--params", help="read this composed params file (what DVC stages use) instead of conf/")
        return p

    for name, text in [
        ("ingest", "read the source and compute base features per actor-day (kql/)"),
        ("features", "add per-actor behaviour features"),
        ("train", "fit the IsolationForest pipeline"),
        ("detect", "score the detect window, flag and explain"),
        ("run", "ingest, features, train and detect in one go (without DVC)"),
    ]:
        with_config(sub.add_parser(name, help=text))
    show = with_config(sub.add_parser("show", help="print the top anomalies with reasons and metrics"))
    show.add_argument("--top", type=int, default=15)
    explain = sub.add_parser("explain", help="one actor-day: features vs baseline, score and rank, raw events")
    explain.add_argument("actor")
    explain.add_argument("day", help="YYYY-MM-DD")
    with_config(explain)
    promote = with_config(sub.add_parser("promote", help="set the registry alias @champion on a model version"))
    promote.add_argument("--version", help="model version (default: the latest)")
    promote.add_argument("--run-id", help="the version logged by this run")
    promote.add_argument("--force", action="store_true", help="promote even without detect metrics")
    promote.add_argument("--reason", default="", help="why (recorded as a version tag)")
    promote.add_argument("--who", help="who promotes (default: $USER)")
    score = with_config(sub.add_parser("score", help="score day(s) with the promoted model (no DVC needed)"))
    score.add_argument("--day", action="append", type=_parse_day, help="YYYY-MM-DD (repeatable; default: window end)")
    score.add_argument("--model-uri", help="default: models:/<tracking.registered_model>@champion")
    with_config(sub.add_parser("tune", help="Optuna study over the detector; writes conf/model/tuned.yaml"))
    with_config(sub.add_parser("compare", help="our model vs the paper's method on the same features and labels"))
    kql = sub.add_parser("kql", help="KQL helpers")
    kql_sub = kql.add_subparsers(dest="kql_command", required=True)
    with_config(kql_sub.add_parser("print", help="print the full Log Analytics query (paste into the portal)"))
    sub.add_parser("setup-kql", help="install duckdb-kql and its antlr4 runtime into <venv>/kql-lib")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    level = args.log_level or ("INFO" if sys.stderr.isatty() else "WARNING")
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "setup-kql":
            from github_ueba.kql_setup import install_kql_lib

            print(f"duckdb-kql installed in {install_kql_lib()}")
            return 0
        cfg = load(args.overrides, params=args.params)
        if args.command == "run":
            _run_all(cfg)
        elif args.command == "show":
            _show(cfg, args)
        elif args.command == "explain":
            from github_ueba.analyst import explain

            print(explain(cfg, args.actor, _parse_day(args.day)))
        elif args.command == "promote":
            from github_ueba.tracking import promote as promote_version

            mv = promote_version(cfg, version=args.version, run_id=args.run_id, force=args.force,
                                 reason=args.reason, who=args.who)
            print(f"{mv.name} version {mv.version} is now @champion")
        elif args.command == "score":
            from github_ueba.scoring import score as score_days

            for path in score_days(cfg, args.model_uri, args.day):
                print(path)
        elif args.command == "tune":
            from github_ueba.tune import run_study

            print(run_study(args.overrides, params=args.params).summary())
        elif args.command == "compare":
            from github_ueba.compare import compare

            print(compare(args.overrides, params=args.params).to_string(float_format=lambda v: f"{v:.3f}"))
        elif args.command == "kql":
            _kql_print(cfg, args)
        else:
            result = _stage(args.command)(cfg)
            if args.command == "detect":
                from github_ueba.summary import print_summary

                print_summary(cfg, top=10)
            elif result is not None:
                log.info("%s: %s", args.command, {k: v for k, v in result.items() if not isinstance(v, (list, dict))})
    except (ConfigError, UebaError) as err:
        print(f"github-ueba {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # MLflow store errors: one line, without importing mlflow for every command
        if not type(err).__module__.startswith("mlflow."):
            raise
        print(f"github-ueba {args.command}: MLflow error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
