# kt_add_unit_test(NAME <ctest name> SOURCES <files> LIBS <targets>)
# One cmocka executable per tested source file; CTest label "unit".
pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)
function(kt_add_unit_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS" ${ARGN})
  string(REPLACE "/" "_" target "test_${T_NAME}")
  add_executable(${target} ${T_SOURCES})
  target_link_libraries(${target} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  add_test(NAME unit/${T_NAME} COMMAND ${target})
  set_tests_properties(unit/${T_NAME} PROPERTIES LABELS unit
    ENVIRONMENT "KT_SOURCE_DIR=${CMAKE_SOURCE_DIR};KT_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared")
endfunction()
