// libFuzzer target: a shard map file as an operator writes it, through the loader and the
// validation `shardgate --check` runs (the YAML, then every database's routers and tables).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "conf/config.h"
#include "routing/shard_map.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = shardgate::conf::LoadString(yaml, "fuzz.yaml");
  if (!config.ok()) return 0;
  for (const auto& [name, db] : (*config)->databases) {
    (void)shardgate::routing::ShardMap::Build(db);
  }
  return 0;
}
