# sandbox: unit tests and the hostile corpus (each hostile file its own process).
# sandbox/: the V8 embedding. The stuck-builtin pool test keeps a core busy for a few
# seconds after it is abandoned, hence the longer timeout.
isoworld_unit_test(sandbox LIBS isoworld_sandbox TIMEOUT 300 LABELS sandbox)

# One cmocka executable per sandbox library (tests/test_sandbox_<library>.c).
foreach(lib library console inject ipc timers codebase measure threads)
  isoworld_unit_test(sandbox_${lib} LIBS isoworld_sandbox TIMEOUT 180 LABELS sandbox)
endforeach()
isoworld_unit_test(sandbox_crypto LIBS isoworld_sandbox_crypto TIMEOUT 120 LABELS sandbox)
# The standalone runner (tools/isoworld-sandbox), driven as a subprocess.
isoworld_unit_test(sandbox_runner LIBS isoworld_sandbox TIMEOUT 300 LABELS sandbox)
if(TARGET test_sandbox_runner)
  add_dependencies(test_sandbox_runner isoworld-sandbox)
endif()

# Hostile player code (shared/hostile/*.js, habit 11): one ctest entry per file, each its
# own process, named hostile_<file>. test_hostile takes the file name as its argument.
set(ISOWORLD_HOSTILE_DIR ${CMAKE_SOURCE_DIR}/../shared/hostile)
add_executable(test_hostile test_hostile.c)
target_compile_options(test_hostile PRIVATE ${ISOWORLD_C_WARNINGS})
target_link_libraries(test_hostile PRIVATE isoworld_sandbox PkgConfig::CMOCKA)
# The same files through the standalone runner (isoworld-sandbox run DIR --ticks N), with
# the same expectations (tests/hostile_expect.h): hostile_runner_<file>.
add_executable(test_hostile_runner test_hostile_runner.c)
target_compile_options(test_hostile_runner PRIVATE ${ISOWORLD_C_WARNINGS})
target_link_libraries(test_hostile_runner PRIVATE isoworld_sandbox PkgConfig::CMOCKA PkgConfig::JANSSON)
add_dependencies(test_hostile_runner isoworld-sandbox)
file(GLOB ISOWORLD_HOSTILE_FILES CONFIGURE_DEPENDS ${ISOWORLD_HOSTILE_DIR}/*.js)
if(NOT ISOWORLD_HOSTILE_FILES)
  message(WARNING "no hostile scenarios found in ${ISOWORLD_HOSTILE_DIR}")
endif()
foreach(f ${ISOWORLD_HOSTILE_FILES})
  get_filename_component(n ${f} NAME_WE)
  add_test(NAME hostile_${n} COMMAND test_hostile ${n}.js)
  set_tests_properties(hostile_${n} PROPERTIES TIMEOUT 120 LABELS "hostile"
                       ENVIRONMENT "ISOWORLD_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared")
  add_test(NAME hostile_runner_${n} COMMAND test_hostile_runner ${n}.js)
  set_tests_properties(hostile_runner_${n} PROPERTIES TIMEOUT 120 LABELS "hostile;hostile_runner"
                       ENVIRONMENT "ISOWORLD_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared;ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
endforeach()
# Scenarios kept in tests/hostile_expect.h (inline_scenarios): classes the shared files miss.
foreach(n huge_allocation split_huge match_huge)
  add_test(NAME hostile_inline_${n} COMMAND test_hostile inline:${n})
  set_tests_properties(hostile_inline_${n} PROPERTIES TIMEOUT 120 LABELS "hostile;hostile_inline")
  add_test(NAME hostile_runner_inline_${n} COMMAND test_hostile_runner inline:${n})
  set_tests_properties(hostile_runner_inline_${n} PROPERTIES TIMEOUT 120 LABELS "hostile;hostile_inline;hostile_runner"
                       ENVIRONMENT "ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
endforeach()
