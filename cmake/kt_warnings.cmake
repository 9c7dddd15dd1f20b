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
