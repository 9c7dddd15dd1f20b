# Link-time optimisation and direct library calls for the kt executable.
#
# kt is many small modules (core/gv_buf, gv_time, the JSON walks, each policy) whose short
# helpers sit in other files than their callers, so without LTO every append or clock read is a
# call; and each call into libc, json-c, libevent or libhttp-parser goes through a PLT stub.
# Measured with bench/gateway/ab.sh in bench/results/gateway.md.
#
# Objects are compiled "fat" (LTO bytecode and ordinary code side by side): the kt link
# optimises across them, while the unit tests link the ordinary code as before, so the tests
# do not each pay a link-time compile. Sanitizer, fuzz and Debug builds keep plain objects.
option(KT_LTO "Link the kt executable with link-time optimisation (GCC; off under sanitizers, fuzzing and Debug)" ON)
if(KT_LTO AND (KT_SANITIZE OR KT_TSAN OR KT_FUZZ OR CMAKE_BUILD_TYPE STREQUAL "Debug"))
  set(KT_LTO OFF)
endif()
if(KT_LTO AND NOT CMAKE_C_COMPILER_ID STREQUAL "GNU")
  message(STATUS "KT_LTO: only set up for GCC; building without it")
  set(KT_LTO OFF)
endif()
if(KT_LTO)
  include(CheckIPOSupported)
  check_ipo_supported(RESULT kt_ipo_ok OUTPUT kt_ipo_why LANGUAGES C)
  if(NOT kt_ipo_ok)
    message(STATUS "KT_LTO: the toolchain cannot ($kt_ipo_why); building without it")
    set(KT_LTO OFF)
  endif()
endif()
if(KT_LTO)
  add_compile_options(-flto=auto -ffat-lto-objects)
  # Archives of LTO objects need the plugin-aware ar and ranlib for their symbol index.
  if(CMAKE_C_COMPILER_AR AND CMAKE_C_COMPILER_RANLIB)
    set(CMAKE_AR ${CMAKE_C_COMPILER_AR})
    set(CMAKE_RANLIB ${CMAKE_C_COMPILER_RANLIB})
  endif()
endif()
# Calls into shared libraries through the GOT, bound at load (the kt link adds -z now).
if(KT_SANITIZE OR KT_TSAN OR KT_FUZZ)
  set(KT_NO_PLT OFF)
else()
  set(KT_NO_PLT ON)
endif()
if(KT_NO_PLT)
  add_compile_options(-fno-plt)
endif()

# kt_link_optimised(TARGET): the kt executable's side of the above.
function(kt_link_optimised target)
  if(KT_LTO)
    target_link_options(${target} PRIVATE -flto=auto)
  endif()
  if(KT_NO_PLT)
    target_link_options(${target} PRIVATE -Wl,-z,now)
  endif()
endfunction()
