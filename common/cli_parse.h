// SPLITINFER_CLI_PARSE: CLI11_PARSE with the project's exit codes. CLI11_PARSE returns CLI11's own
// codes for a bad command line (105 for a failed check, 109 for an extra argument, ...); every
// program here documents exit 2 for bad options, so a parse error returns 2 after CLI11 printed
// its message, and --help / --version return 0.
#pragma once

#include <CLI/CLI.hpp>

#define SPLITINFER_CLI_PARSE(app, argc, argv)          \
  do {                                                 \
    try {                                              \
      (app).parse((argc), (argv));                     \
    } catch (const CLI::ParseError& cli_parse_error) { \
      return (app).exit(cli_parse_error) == 0 ? 0 : 2; \
    }                                                  \
  } while (false)
