// PostgreSQL's lookup3-based extended hashes and the one-column partition hash combine.
#include "routing/pg_hash.h"

#include "routing/key_value.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

inline uint32_t Rot(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// mix() and final() of hashfn.c, verbatim in effect.
inline void Mix(uint32_t& a, uint32_t& b, uint32_t& c) {
  a -= c; a ^= Rot(c, 4);  c += b;
  b -= a; b ^= Rot(a, 6);  a += c;
  c -= b; c ^= Rot(b, 8);  b += a;
  a -= c; a ^= Rot(c, 16); c += b;
  b -= a; b ^= Rot(a, 19); a += c;
  c -= b; c ^= Rot(b, 4);  b += a;
}

inline void Final(uint32_t& a, uint32_t& b, uint32_t& c) {
  c ^= b; c -= Rot(b, 14);
  a ^= c; a -= Rot(c, 11);
  b ^= a; b -= Rot(a, 25);
  c ^= b; c -= Rot(b, 16);
  a ^= c; a -= Rot(c, 4);
  b ^= a; b -= Rot(a, 14);
  c ^= b; c -= Rot(b, 24);
}

inline uint32_t Load32(const unsigned char* k) {
  return k[0] | (uint32_t{k[1]} << 8) | (uint32_t{k[2]} << 16) | (uint32_t{k[3]} << 24);
}

}  // namespace

uint64_t HashUint32Extended(uint32_t k, uint64_t seed) {
  uint32_t a, b, c;
  a = b = c = 0x9e3779b9u + static_cast<uint32_t>(sizeof(uint32_t)) + 3923095u;
  if (seed != 0) {
    a += static_cast<uint32_t>(seed >> 32);
    b += static_cast<uint32_t>(seed);
    Mix(a, b, c);
  }
  a += k;
  Final(a, b, c);
  return (uint64_t{b} << 32) | c;
}

uint64_t HashInt8Extended(int64_t value, uint64_t seed) {
  // Folds the high half into the low half so that int4 and int8 of one value hash alike.
  uint32_t lohalf = static_cast<uint32_t>(value);
  uint32_t hihalf = static_cast<uint32_t>(static_cast<uint64_t>(value) >> 32);
  lohalf ^= (value >= 0) ? hihalf : ~hihalf;
  return HashUint32Extended(lohalf, seed);
}

uint64_t HashBytesExtended(std::string_view bytes, uint64_t seed) {
  // PostgreSQL reads words on aligned input and bytes otherwise; on little-endian machines both
  // paths read the same values, so the byte-wise path below is the whole truth.
  const auto* k = reinterpret_cast<const unsigned char*>(bytes.data());
  uint32_t len = static_cast<uint32_t>(bytes.size());
  uint32_t a, b, c;
  a = b = c = 0x9e3779b9u + len + 3923095u;
  if (seed != 0) {
    a += static_cast<uint32_t>(seed >> 32);
    b += static_cast<uint32_t>(seed);
    Mix(a, b, c);
  }
  while (len >= 12) {
    a += Load32(k);
    b += Load32(k + 4);
    c += Load32(k + 8);
    Mix(a, b, c);
    k += 12;
    len -= 12;
  }
  switch (len) {  // the last 11 bytes; the lowest byte of c is left for nothing (as upstream)
    case 11: c += uint32_t{k[10]} << 24; [[fallthrough]];
    case 10: c += uint32_t{k[9]} << 16; [[fallthrough]];
    case 9: c += uint32_t{k[8]} << 8; [[fallthrough]];
    case 8: b += uint32_t{k[7]} << 24; [[fallthrough]];
    case 7: b += uint32_t{k[6]} << 16; [[fallthrough]];
    case 6: b += uint32_t{k[5]} << 8; [[fallthrough]];
    case 5: b += k[4]; [[fallthrough]];
    case 4: a += uint32_t{k[3]} << 24; [[fallthrough]];
    case 3: a += uint32_t{k[2]} << 16; [[fallthrough]];
    case 2: a += uint32_t{k[1]} << 8; [[fallthrough]];
    case 1: a += k[0]; break;
    default: break;
  }
  Final(a, b, c);
  return (uint64_t{b} << 32) | c;
}

uint64_t PartitionHash(const KeyValue& value) {
  uint64_t h = value.type() == KeyType::kInt
                   ? HashInt8Extended(value.int_value(), kHashPartitionSeed)
                   : HashBytesExtended(value.bytes(), kHashPartitionSeed);
  return HashCombine64(0, h);
}

uint64_t PartitionRemainder(const KeyValue& value, uint64_t modulus) {
  return PartitionHash(value) % modulus;
}

std::string PartitionHashSql(std::string_view key, KeyType type) {
  // The server's own extended hash functions with the partition seed (it fits in int8); text
  // hashes its bytes only under a deterministic collation, which the caller's COLLATE "C" is.
  std::string_view fn = type == KeyType::kInt    ? "hashint8extended"
                        : type == KeyType::kText ? "hashtextextended"
                                                 : "uuid_hash_extended";
  std::string raw = Cat(fn, "(", key, ", ", static_cast<int64_t>(kHashPartitionSeed), ")");
  // The int8 result read as unsigned (+2^64), then hash_combine64(0, h) = h + magic, both
  // modulo 2^64; the sum is positive, so mod() needs no sign care.
  constexpr std::string_view kTwo64 = "18446744073709551616";
  return Cat("mod(", raw, "::numeric + ", kTwo64, " + ", kHashCombine64Magic, ", ", kTwo64, ")");
}

}  // namespace shardgate::routing
