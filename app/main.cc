// quilt: the one executable. Subcommands: generate (for now), serve (the platform issue).
#include <cstdio>
#include <cstring>
#include <string>

#include "app/generate_command.h"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: quilt <command> [flags]\n"
               "  generate [--model DIR] [--adapter DIR] [--max-tokens N] [--temperature T]\n"
               "           [--top-p P] [--top-k K] [--seed S] [--stop STR] [--ignore-eos]\n"
               "           [--chat] [--device cpu] PROMPT\n"
               "      one completion on the model (default: the bundled demo model)\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "generate") return quilt::app::generate_command(argc - 2, argv + 2);
  std::fprintf(stderr, "quilt: unknown command '%s'\n", command.c_str());
  usage();
  return 2;
}
