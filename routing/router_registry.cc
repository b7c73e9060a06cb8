// The router registry: one line per router type. Adding a router = its file + one line here.
// (A table rather than static self-registration, which a static library's linker would drop.)
#include "routing/router.h"

namespace shardgate::routing {

const std::vector<RouterType>& RouterTypes() {
  static const std::vector<RouterType> kTypes = {
      {"modulo", &MakeModuloRouter},
      {"range", &MakeRangeRouter},
      {"directory", &MakeDirectoryRouter},
      {"hash_ring", &MakeHashRingRouter},
  };
  return kTypes;
}

}  // namespace shardgate::routing
