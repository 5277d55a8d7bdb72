"""Count the Market-1501 attribute priors that ``shufflebits.data.synth.people.MARKET_PRIORS`` holds.

    python scripts/market_priors.py ../shared/data/attributes/market_attribute.mat

Prints one line per prior (train + test identities; colours among identities
with exactly one colour marked; "|female" / "|male" / "|dress" / "|pants" are
conditional), in the constant's format.
"""

from __future__ import annotations

import argparse

from shufflebits.data.attributes import load_attributes
from shufflebits.data.synth.people import count_priors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mat", help="market_attribute.mat")
    tables = load_attributes(parser.parse_args().mat, "market")
    for name, prior in count_priors([*tables["train"].values(), *tables["test"].values()]).items():
        print(f'    "{name}": ({", ".join(f"{p:.3f}" for p in prior)}),')


if __name__ == "__main__":
    main()
