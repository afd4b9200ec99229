from twintap.cli import main

raise SystemExit(main())
