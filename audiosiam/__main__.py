from audiosiam import _interrupt

_interrupt.install(process=True)  # first: Ctrl-C while the rest imports is an interrupt too (exit 130)

try:  # Ctrl-C while cli itself imports: its frames are audiosiam's, so the interrupt is raised there
    from audiosiam.cli import main
except BaseException:
    if _interrupt.interrupted():
        _interrupt.exit_now()
    raise

raise SystemExit(main())
