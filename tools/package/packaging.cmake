# The Debian package (CPack DEB): install rules for the unit, the config and the docs, and the
# package metadata. Binaries install from their own folders (proxy/, tools/shardctl/) to bin.
# Build it with tools/package.sh; tests/tools/package_test.sh checks and installs it.

# Relative destinations land under CPACK_PACKAGING_INSTALL_PREFIX (/usr) in the package.
install(FILES ${PROJECT_SOURCE_DIR}/systemd/shardgate.service DESTINATION lib/systemd/system)
# A dpkg conffile (see tools/package/conffiles); postinst makes it root:shardgate.
install(FILES ${PROJECT_SOURCE_DIR}/conf/examples/shardgate.yaml
        DESTINATION /etc/shardgate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/ARCHITECTURE.md
        DESTINATION share/doc/shardgate)
install(FILES ${PROJECT_SOURCE_DIR}/conf/examples/single.yaml
              ${PROJECT_SOURCE_DIR}/conf/examples/sharded.yaml
        DESTINATION share/doc/shardgate/examples)

# `cpack` (and `ninja install`) run the install step, which by default builds `all` first: every
# test and benchmark. The package needs only shardgate and shardctl, which tools/package.sh
# builds explicitly; install fails if they are missing.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME shardgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "shardgate")
set(CPACK_PACKAGE_CONTACT "shardgate maintainers <shardgate@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "PostgreSQL sharding proxy")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)  # RelWithDebInfo binaries carry debug info the package does not need
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # shardgate_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
# The extended description; the summary above is its first line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "shardgate speaks the PostgreSQL wire protocol to clients and servers, pools\n\
server connections, routes each statement to the shard that owns its key, runs\n\
statements across shards with two-phase commit, and reshards online (shardctl).")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps computes the shared library dependencies from the binaries; adduser is for
# postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql-client")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/conffiles
    ${CMAKE_CURRENT_LIST_DIR}/postinst
    ${CMAKE_CURRENT_LIST_DIR}/prerm
    ${CMAKE_CURRENT_LIST_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)  # scripts 0755, conffiles 0644
include(CPack)
