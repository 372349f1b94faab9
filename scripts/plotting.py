"""matplotlib when it is installed, for the scripts/plot_*.py that can also run without it.

    from plotting import optional_pyplot
    plt, NO_MPL = optional_pyplot("plot_codecs")

plt is matplotlib.pyplot (Agg backend) or None; NO_MPL is the message to print when it is None
(the tables are still written; scripts/install_deps.sh --plots installs python3-matplotlib).
"""


def optional_pyplot(script):
    message = (f"{script}: python3-matplotlib is missing: the tables are written, the plots "
               "skipped (scripts/install_deps.sh --plots installs it)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, message
    return plt, message
