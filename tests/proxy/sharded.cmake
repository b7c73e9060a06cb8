# Integration tests of the sharded proxy (issue 4): routing by every router type, the read/write
# split, transactions across shards, the extended protocol, the admin console, and failover
# (replica killed under load, lagging replica, dead primary, promoted replica). Included from
# tests/proxy/CMakeLists.txt; sources are found relative to this file, so it may be included
# from elsewhere too. One cluster per binary (SetUpTestSuite), hence add_test, not discovery.
# Links shardgate_routing: the tests ask the routing library itself which shard owns a key.
function(shardgate_sharded_test name)
  if(COMMAND shardgate_test_wanted)
    shardgate_test_wanted(${name} wanted)
    if(NOT wanted)
      return()
    endif()
  endif()
  set(sources ${ARGN})
  list(TRANSFORM sources PREPEND ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/)
  add_executable(proxy_${name}_test ${sources})
  target_link_libraries(proxy_${name}_test PRIVATE
    shardgate_test_support shardgate_routing shardgate_conf shardgate_protocol
    PostgreSQL::PostgreSQL absl::strings absl::status absl::statusor
    GTest::gmock GTest::gmock_main Threads::Threads)
  add_test(NAME integration.proxy.${name} COMMAND proxy_${name}_test --gtest_color=no)
  # ctest -j starts the costliest first (seconds on 2 cores; default 15).
  set(cost 15)
  if(name STREQUAL "sharded_routing")
    set(cost 65)
  elseif(name STREQUAL "sharded_failover")
    set(cost 30)
  endif()
  set_tests_properties(integration.proxy.${name} PROPERTIES LABELS integration TIMEOUT 900
                       COST ${cost})
endfunction()

# Every row on the shard its router names; reads to replicas, writes to primaries; 0A000/25P02
# across shards; reference and unlisted tables; $1 keys; SHOW ROUTE; explain NOTICEs.
shardgate_sharded_test(sharded_routing sharded_routing_test.cc sharded_readwrite_test.cc)
# Replica killed under a read load, lagging replica, dead primary, promoted replica.
shardgate_sharded_test(sharded_failover sharded_failover_test.cc)
# A hung primary (SIGSTOP: timeouts.query, the circuit breaker) and a primary killed under a
# write load (no acknowledged write lost), the other shard serving throughout.
shardgate_sharded_test(sharded_faults sharded_faults_test.cc)
# The query cache: hits, invalidation by writes (also under concurrent readers), the extended
# protocol, and what is never cached.
shardgate_sharded_test(sharded_cache sharded_cache_test.cc)
# A routing hint never reaches a server database the client's user may not connect to.
shardgate_sharded_test(sharded_security sharded_security_test.cc)
# Two-phase commit of writes on several shards; the proxy killed between the phases.
shardgate_sharded_test(sharded_2pc two_phase_test.cc)
# The same queries on one reference PostgreSQL and through shardgate over three shards.
shardgate_sharded_test(sharded_differential differential_test.cc)
# The admin console's SHOW commands after a known workload; RELOAD and SIGHUP with a broken file
# and with a shard added.
shardgate_sharded_test(admin_console admin_console_test.cc)
# SELECT shardgate.next_id() in the extended protocol on a sharded database (issue 10).
shardgate_sharded_test(sharded_next_id sharded_next_id_test.cc)
# shardctl sequence install on every router type, INSERTs without the key (generated_key:
# true) through shardgate, each row on the shard its key routes to (issue 10).
shardgate_sharded_test(sharded_sequence sharded_sequence_test.cc)
if(TARGET proxy_sharded_sequence_test)
  target_compile_definitions(proxy_sharded_sequence_test PRIVATE
                             SHARDCTL_BINARY="$<TARGET_FILE:shardctl>")
  add_dependencies(proxy_sharded_sequence_test shardctl shardgate)
endif()
# Directory routers with a `store:` table: keys read from it, cached, dropped by NOTIFY; errors;
# shardctl route reading the same table.
shardgate_sharded_test(sharded_directory sharded_directory_test.cc)
# (The tsan tree builds no tools/: there the shardctl case is skipped.)
if(TARGET proxy_sharded_directory_test AND TARGET shardctl)
  add_dependencies(proxy_sharded_directory_test shardctl shardgate)
endif()
# rate_limit of a sharded database: 53400 on the routed paths (simple, extended, cross-shard).
shardgate_sharded_test(sharded_rate_limits sharded_rate_limits_test.cc)
