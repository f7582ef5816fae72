from beamhub.cli import main

raise SystemExit(main())
