from writech.cli import main

raise SystemExit(main())
