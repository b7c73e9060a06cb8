// PostgreSQL's own partition hash (src/common/hashfn.c, src/backend/access/hash/hashfunc.c and
// partbounds.c), so that a key's shard equals the remainder PostgreSQL computes for a
// `PARTITION BY HASH` table: a shard's rows can be checked and filtered by SQL on the server.
//
// API: HashInt8Extended / HashBytesExtended (raw, seeded 64-bit hashes), PartitionHash (one key
// column, seeded and combined as compute_partition_hash_value does), PartitionRemainder, and
// PartitionHashSql (the same hash as an SQL expression the server evaluates).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shardgate::routing {

class KeyValue;
enum class KeyType;

// HASH_PARTITION_SEED in PostgreSQL's partition.h.
inline constexpr uint64_t kHashPartitionSeed = 0x7A5B22367996DCFDULL;
// The constant hash_combine64 adds (src/include/common/hashfn.h).
inline constexpr uint64_t kHashCombine64Magic = 0x49a0f4dd15e5a8e3ULL;

// hash_uint32_extended(k, seed).
uint64_t HashUint32Extended(uint32_t k, uint64_t seed);
// hashint8extended: int2, int4 and int8 all hash through this (same value, same hash).
uint64_t HashInt8Extended(int64_t value, uint64_t seed);
// hash_bytes_extended (lookup3, little-endian byte order as on x86/ARM servers): text, varchar
// (deterministic collations) and uuid (its 16 raw bytes).
uint64_t HashBytesExtended(std::string_view bytes, uint64_t seed);
// hash_combine64(a, b).
inline uint64_t HashCombine64(uint64_t a, uint64_t b) {
  a ^= b + kHashCombine64Magic + (a << 54) + (a >> 7);
  return a;
}

// The row hash of a one-column partition key: hash_combine64(0, hash(value, seed)).
uint64_t PartitionHash(const KeyValue& value);
// rowHash % modulus, the remainder PostgreSQL's satisfies_hash_partition checks. modulus > 0.
uint64_t PartitionRemainder(const KeyValue& value, uint64_t modulus);

// PartitionHash as a PostgreSQL 15 expression of type numeric in [0, 2^64) (int8 cannot hold
// it unsigned). `key` must already be of `type`'s SQL type (int8, text, uuid), as
// owner_sql::Key makes it; a NULL key yields NULL.
std::string PartitionHashSql(std::string_view key, KeyType type);

}  // namespace shardgate::routing

