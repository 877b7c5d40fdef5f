from hdp.agent.server import main

raise SystemExit(main())
