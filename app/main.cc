// quilt: the one executable. Subcommands: generate (for now), serve (the platform issue).
#include <cstdio>
#include <cstring>
#include <string>

#include "app/generate_command.h"
#ifdef QUILT_WITH_PLATFORM
#include "app/serve_command.h"
#endif

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: quilt <command> [flags]\n"
               "  generate [--model DIR] [--adapter DIR] [--max-tokens N] [--temperature T]\n"
               "           [--top-p P] [--top-k K] [--seed S] [--stop STR] [--ignore-eos]\n"
               "           [--chat] [--device cpu|cuda[:N]] [--dtype float16|bfloat16] PROMPT\n"
               "      one completion on the model (default: the bundled demo model)\n"
               "  serve [--model DIR] [--data-dir DIR] [--host H] [--port P] [--device cpu|cuda[:N]]\n"
               "        [--dtype float16|bfloat16]\n"
               "        [--admin-key-file FILE] [--config FILE] [--threads N] [--drain-timeout S]\n"
               "        [--max-body-bytes N] [--max-upload-bytes N] [--read-timeout S]\n"
               "        [--idle-timeout S] [--max-connections N] [--kv-cache-mb N] [--host-cache-mb N]\n"
               "        [--request-timeout S] [--max-waiting N] [--max-in-flight-per-tenant N]\n"
               "        [--metrics-key KEY] [--max-lora-rank N] [--max-loras N] [--lora-pool-mib N]\n"
               "        [--max-model-len N] [--gpu-memory-fraction F] [--admin-port P]\n"
               "        [--write-timeout S] [--max-send-buffer-bytes N] [--cuda-graphs on|off]\n"
               "      the multi-tenant HTTP server (API.md); admin key from --admin-key-file or\n"
               "      QUILT_ADMIN_KEY, else generated and printed once\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "generate") return quilt::app::generate_command(argc - 2, argv + 2);
#ifdef QUILT_WITH_PLATFORM
  if (command == "serve") return quilt::app::serve_command(argc - 2, argv + 2);
#else
  if (command == "serve") {
    std::fprintf(stderr, "quilt: this build has no server (configured with -DQUILT_PLATFORM=OFF)\n");
    return 2;
  }
#endif
  std::fprintf(stderr, "quilt: unknown command '%s'\n", command.c_str());
  usage();
  return 2;
}
