# players: accounts, tokens, code branches, Memory, console commands (issue 4).
# Unit tests (cmocka) of the rules and of the op queue on an in-process server, and the
# end-to-end flows with real clients (screeps-api, curl) against the real binary.
isoworld_unit_test(players LIBS isoworld_server TIMEOUT 180 LABELS players)

find_program(ISOWORLD_NODE node)
find_program(ISOWORLD_CURL curl)
if(ISOWORLD_NODE AND ISOWORLD_CURL)
  file(GLOB ISOWORLD_PLAYERS_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/players*.test.mjs)
  foreach(f ${ISOWORLD_PLAYERS_E2E})
    get_filename_component(n ${f} NAME_WE)
    string(REPLACE "." "_" n ${n})
    add_test(NAME e2e_${n} COMMAND ${ISOWORLD_NODE} --test ${f} WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
    # Needs the server binary (built with everything) and the npm clients (make test
    # runs tools/bootstrap.sh --e2e, which installs them in tests/e2e/node_modules).
    set_tests_properties(e2e_${n} PROPERTIES TIMEOUT 300 LABELS "e2e;players"
                         ENVIRONMENT "ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
                         REQUIRED_FILES "${CMAKE_BINARY_DIR}/bin/isoworld;${CMAKE_CURRENT_SOURCE_DIR}/e2e/node_modules/screeps-api/package.json")
  endforeach()
else()
  message(WARNING "node or curl not found: the players end-to-end tests are not registered")
endif()
