# Run at build time (POST_BUILD, see shardgate_suite_tests in tests/CMakeLists.txt): lists the
# gtest binary's suites and writes one ctest test per suite, `<PREFIX><Suite>` running
# `--gtest_filter=<Suite>.*`, into OUT. A suite's tests share one process, and so one
# SetUpTestSuite (a server started once, not once per TEST) and one process start under the
# sanitizers.
#   -D EXE=... -D PREFIX=... -D LABELS=... -D TIMEOUT=... -D WORKDIR=... -D OUT=...
execute_process(COMMAND "${EXE}" --gtest_list_tests
                OUTPUT_VARIABLE listing ERROR_VARIABLE errors RESULT_VARIABLE rc TIMEOUT 60)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} --gtest_list_tests failed (${rc}): ${errors}")
endif()
string(REPLACE ";" "\\;" listing "${listing}")
string(REPLACE "\n" ";" lines "${listing}")
set(script "")
set(count 0)
foreach(line IN LISTS lines)
  # Suite lines start in column 0: "Suite." or "Prefix/Suite.  # TypeParam = ...".
  if(line MATCHES "^([^ #][^ ]*)\\.( .*)?$")
    set(suite "${CMAKE_MATCH_1}")
    set(name "${PREFIX}${suite}")
    string(APPEND script
      "add_test([==[${name}]==] [==[${EXE}]==] [==[--gtest_filter=${suite}.*]==] --gtest_color=no)\n"
      "set_tests_properties([==[${name}]==] PROPERTIES LABELS [==[${LABELS}]==] "
      "WORKING_DIRECTORY [==[${WORKDIR}]==]")
    if(TIMEOUT)
      string(APPEND script " TIMEOUT ${TIMEOUT}")
    endif()
    string(APPEND script ")\n")
    math(EXPR count "${count} + 1")
  endif()
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "${EXE} lists no test suite")
endif()
file(WRITE "${OUT}" "${script}")
