# Determinism of the whole server (issue 6): two servers from the same seed and code reach
# the same world hash tick for tick; a server killed with SIGKILL and restarted reaches it
# too. The real binary, driven by node (tests/e2e/determinism.test.mjs).
find_program(ISOWORLD_NODE node)
if(ISOWORLD_NODE)
  add_test(NAME e2e_determinism COMMAND ${ISOWORLD_NODE} --test ${CMAKE_CURRENT_SOURCE_DIR}/e2e/determinism.test.mjs
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
  set_tests_properties(e2e_determinism PROPERTIES TIMEOUT 300 LABELS "e2e;world"
                       ENVIRONMENT "ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
                       REQUIRED_FILES "${CMAKE_BINARY_DIR}/bin/isoworld")
endif()
