# shellcheck shell=bash
# Sourced by the report scripts that draw figures with matplotlib (scripts/plot_*.py).
#   plots_check NAME     call at the top, before the long run: sets PLOTS=1 when /usr/bin/python3
#                        imports matplotlib; else PLOTS=0 and says on stderr that the tables will
#                        be written and the plots skipped.
#   plots_skipped NAME   call in place of the plot step when PLOTS=0: says it again, at the end.
# scripts/install_deps.sh --plots installs python3-matplotlib.
plots_check() {
  if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    # shellcheck disable=SC2034  # read by the sourcing script
    PLOTS=1
  else
    # shellcheck disable=SC2034
    PLOTS=0
    plots_skipped "$1"
  fi
}

plots_skipped() {
  echo "$1: python3-matplotlib is missing: the tables are written, the plots skipped" \
    "(scripts/install_deps.sh --plots installs it)" >&2
}
