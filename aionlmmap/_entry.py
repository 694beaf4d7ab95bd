"""The ``aionlmmap`` command's entry point (the console script and
``python -m aionlmmap``).

``aionlmmap dump sockets ...`` is a one-shot command measured against
``ss``, whose whole run takes about as long as importing argparse, json,
typing and :mod:`aionlmmap.cli` with its parser of every command. So that
command line, when spelled plainly (``-t -u -x --json -4|-6 --netns NAME
state S``, in any order), is read here by
:func:`aionlmmap.families.sock_diag.cli.parse_argv` and runs without them.
Every other command line, and any ``dump sockets`` line that reading does
not take as it is (``-h``, an abbreviation, ``-tu``, another option...),
goes to :func:`aionlmmap.cli.main` and argparse, unchanged; tests check
that both readings agree wherever the first one answers.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["main", "guarded"]


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:2] == ["dump", "sockets"]:
        import gc

        # A dump allocates objects that refcounting frees; the cyclic
        # collector would only rescan them (cli.main disables it for its
        # dumps too), and here it would also run through the imports.
        gc.disable()
        from .families.sock_diag import cli as sockets_cli

        args = sockets_cli.parse_argv(words[2:])
        if args is not None:
            return guarded(lambda: sockets_cli.dump(args, sys.stdout))
    from .cli import main as cli_main

    return cli_main(argv)


def guarded(run: Callable[[], int]) -> int:
    """``run()``, with the command's answers to a closed pipe and to errors."""
    try:
        return run()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `aionlmmap monitor | head`: the reader left; exit quietly.
        try:
            sys.stdout = None  # type: ignore[assignment]
        except OSError:
            pass
        return 0
    except (ValueError, OSError) as exc:
        print(f"aionlmmap: {exc}", file=sys.stderr)
        return 1
