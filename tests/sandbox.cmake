# sandbox: unit tests and the hostile corpus (each hostile file its own process).
# sandbox/: the V8 embedding. The stuck-builtin pool test keeps a core busy for a few
# seconds after it is abandoned, hence the longer timeout.
isoworld_unit_test(sandbox LIBS isoworld_sandbox TIMEOUT 300 LABELS sandbox)

# Hostile player code (shared/hostile/*.js, habit 11): one ctest entry per file, each its
# own process, named hostile_<file>. test_hostile takes the file name as its argument.
set(ISOWORLD_HOSTILE_DIR ${CMAKE_SOURCE_DIR}/../shared/hostile)
add_executable(test_hostile test_hostile.c)
target_compile_options(test_hostile PRIVATE ${ISOWORLD_C_WARNINGS})
target_link_libraries(test_hostile PRIVATE isoworld_sandbox PkgConfig::CMOCKA)
file(GLOB ISOWORLD_HOSTILE_FILES CONFIGURE_DEPENDS ${ISOWORLD_HOSTILE_DIR}/*.js)
if(NOT ISOWORLD_HOSTILE_FILES)
  message(WARNING "no hostile scenarios found in ${ISOWORLD_HOSTILE_DIR}")
endif()
foreach(f ${ISOWORLD_HOSTILE_FILES})
  get_filename_component(n ${f} NAME_WE)
  add_test(NAME hostile_${n} COMMAND test_hostile ${n}.js)
  set_tests_properties(hostile_${n} PROPERTIES TIMEOUT 120 LABELS "hostile"
                       ENVIRONMENT "ISOWORLD_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared")
endforeach()
# Scenarios kept in test_hostile.c (inline_scenarios): classes the shared files miss.
foreach(n huge_allocation split_huge match_huge)
  add_test(NAME hostile_inline_${n} COMMAND test_hostile inline:${n})
  set_tests_properties(hostile_inline_${n} PROPERTIES TIMEOUT 120 LABELS "hostile;hostile_inline")
endforeach()
