"""``python -m hundi.simulator <venue> ...``: the simulator without the rest of the CLI."""

from hundi.simulator.cli import simulate

if __name__ == "__main__":
    simulate(prog_name="python -m hundi.simulator")
