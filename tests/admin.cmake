# admin: world management (issue 7). A cmocka executable for what persistence gives the
# admin (verify, state hash, admin log, the data directory lock, backups to a descriptor)
# and the end-to-end tests that drive the real isoworld-admin against the real server.
isoworld_unit_test(admin LIBS isoworld_persistence TIMEOUT 120 LABELS admin)

find_program(ISOWORLD_NODE node)
if(ISOWORLD_NODE)
  file(GLOB ISOWORLD_ADMIN_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/admin*.test.mjs)
  foreach(f ${ISOWORLD_ADMIN_E2E})
    get_filename_component(n ${f} NAME_WE)
    string(REPLACE "." "_" n ${n})
    add_test(NAME e2e_${n} COMMAND ${ISOWORLD_NODE} --test ${f} WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
    set_tests_properties(e2e_${n} PROPERTIES TIMEOUT 400 LABELS "e2e;admin"
                         ENVIRONMENT "ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
                         REQUIRED_FILES "${CMAKE_BINARY_DIR}/bin/isoworld;${CMAKE_BINARY_DIR}/bin/isoworld-admin;${CMAKE_CURRENT_SOURCE_DIR}/e2e/node_modules/screeps-api/package.json")
  endforeach()
else()
  message(WARNING "node not found: the admin end-to-end tests are not registered")
endif()
