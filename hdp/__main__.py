from hdp.cli import main

raise SystemExit(main())
