// PostgreSQL's partition hash: the facts PostgreSQL itself gives (see pg_hash_live_test.cc for
// the check against a running server).
#include "routing/pg_hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "routing/key_value.h"

namespace shardgate::routing {
namespace {

TEST(PgHash, BigintZeroToNineModulusThree) {
  // SELECT satisfies_hash_partition(...) on PostgreSQL 15: the remainders of 0..9.
  const uint64_t expected[] = {2, 2, 0, 1, 0, 2, 0, 1, 0, 2};
  for (int64_t v = 0; v < 10; ++v) {
    EXPECT_EQ(PartitionRemainder(KeyValue::Int(v), 3), expected[v]) << "value " << v;
  }
}

TEST(PgHash, BigintOneHashFact) {
  // The fact "hash of bigint 1 = 0x9c7715e2970a8fb8" is the row hash after
  // hash_combine64(0, h), which is what partitioning divides; the raw seeded hashint8extended
  // differs. The live test confirms this against satisfies_hash_partition().
  EXPECT_EQ(PartitionHash(KeyValue::Int(1)), 0x9c7715e2970a8fb8ULL);
  EXPECT_EQ(HashCombine64(0, HashInt8Extended(1, kHashPartitionSeed)), 0x9c7715e2970a8fb8ULL);
  EXPECT_NE(HashInt8Extended(1, kHashPartitionSeed), 0x9c7715e2970a8fb8ULL);
}

TEST(PgHash, HashCombineWithZeroAddsTheConstant) {
  EXPECT_EQ(HashCombine64(0, 0), 0x49a0f4dd15e5a8e3ULL);
  EXPECT_EQ(HashCombine64(0, 1), 0x49a0f4dd15e5a8e4ULL);
}

TEST(PgHash, Int4AndInt8OfOneValueHashAlike) {
  // hashint4extended(v) == hashint8extended(v) for every int32 v: PostgreSQL's design, which
  // is why one integer key type covers int2/int4/int8.
  for (int64_t v : {0LL, 1LL, -1LL, 2147483647LL, -2147483648LL, 123456LL}) {
    EXPECT_EQ(HashInt8Extended(v, kHashPartitionSeed),
              HashUint32Extended(static_cast<uint32_t>(static_cast<int32_t>(v)),
                                 kHashPartitionSeed))
        << v;
  }
}

TEST(PgHash, ZeroSeedSkipsThePerturbation) {
  EXPECT_NE(HashBytesExtended("abc", 0), HashBytesExtended("abc", kHashPartitionSeed));
  EXPECT_NE(HashInt8Extended(5, 0), HashInt8Extended(5, 1));
}

TEST(PgHash, BytesHashCoversEveryTailLength) {
  // Lengths 0..40 exercise the 12-byte loop and every tail case; each byte must matter.
  std::string s;
  uint64_t previous = HashBytesExtended(s, kHashPartitionSeed);
  for (int len = 1; len <= 40; ++len) {
    s.push_back(static_cast<char>('a' + len % 26));
    uint64_t h = HashBytesExtended(s, kHashPartitionSeed);
    EXPECT_NE(h, previous) << "length " << len;
    std::string flipped = s;
    flipped[len - 1] ^= 1;
    EXPECT_NE(HashBytesExtended(flipped, kHashPartitionSeed), h) << "length " << len;
    previous = h;
  }
}

TEST(PgHash, IntegerLimitsAreFolded) {
  // The fold makes v and ~v (for v >= 0) share the low word's input: distinct hashes still.
  EXPECT_NE(HashInt8Extended(std::numeric_limits<int64_t>::max(), kHashPartitionSeed),
            HashInt8Extended(std::numeric_limits<int64_t>::min(), kHashPartitionSeed));
  // 2^32 folds to 1 ^ 0 ... i.e. lohalf 0 ^ hihalf 1 = 1: the same input as the value 1.
  EXPECT_EQ(HashInt8Extended(int64_t{1} << 32, kHashPartitionSeed),
            HashInt8Extended(1, kHashPartitionSeed));
}

TEST(PgHash, RemainderIsBelowModulus) {
  for (uint64_t m : {1u, 2u, 3u, 7u, 64u}) {
    for (int64_t v = -50; v < 50; ++v) EXPECT_LT(PartitionRemainder(KeyValue::Int(v), m), m);
  }
}

}  // namespace
}  // namespace shardgate::routing
