import sys

from mcpbox.cli import main

sys.exit(main())
