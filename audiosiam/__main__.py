from audiosiam import _interrupt

_interrupt.install()  # first: Ctrl-C while the rest imports is an interrupt too (exit 130)

from audiosiam.cli import main  # noqa: E402

raise SystemExit(main())
