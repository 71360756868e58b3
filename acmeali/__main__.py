"""``python -m acmeali``."""

from acmeali.cli import main

raise SystemExit(main())
