"""What every SDK script here shares: `OK <step>` lines for the Rust test to check, and a
run that prints `DONE` on success or the traceback and a non-zero exit on the first failure."""
import sys
import traceback


def ok(step):
    print("OK", step, flush=True)


def run(main):
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print("DONE", flush=True)
