from nst_tui.cli import main

raise SystemExit(main())
