from mhc_mup.cli.app import main

raise SystemExit(main())
