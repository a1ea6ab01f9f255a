from audiosiam.cli import main

raise SystemExit(main())
