# Warnings and sanitizers applied to every target of the project.
add_compile_options(-Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
                    -Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing)
# snprintf into a fixed buffer is how kt bounds text on purpose (log fields,
# error messages); GCC's may-truncate guesses at -O2 would flag every one.
add_compile_options(-Wno-format-truncation)
if(KT_WERROR)
  add_compile_options(-Werror)
endif()
if(KT_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -O1)
  add_link_options(-fsanitize=address,undefined)
endif()
# ThreadSanitizer cannot share a build with ASan: its own tree (build-tsan/ in scripts/test.sh).
if(KT_TSAN)
  if(KT_SANITIZE)
    message(FATAL_ERROR "KT_TSAN and KT_SANITIZE exclude each other; use two build trees")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -O1 -g)
  add_link_options(-fsanitize=thread)
endif()
