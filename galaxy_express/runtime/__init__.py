"""Entry points: launcher, serving workers, migrations, shell, reporter loop, spam-count rebuild."""
