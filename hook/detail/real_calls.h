// The real function of every name the hook interposes (detail/real.h).
// Code of the hook calls these, never the names themselves, which would
// come back into the hook.
#pragma once

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hook/detail/real.h"

namespace spindle::hook_detail::real {

// One per hooked name, with the name's C signature (fcntl64 is the name
// _FILE_OFFSET_BITS=64 binds fcntl to).
inline real_fn<int(int, int, int)> socket{"socket"};
inline real_fn<int(int, int, int, int*)> socketpair{"socketpair"};
inline real_fn<int(int, sockaddr*, socklen_t*)> accept{"accept"};
inline real_fn<int(int, sockaddr*, socklen_t*, int)> accept4{"accept4"};
inline real_fn<int(int, const sockaddr*, socklen_t)> connect{"connect"};
inline real_fn<ssize_t(int, void*, size_t)> read{"read"};
inline real_fn<ssize_t(int, const iovec*, int)> readv{"readv"};
inline real_fn<ssize_t(int, void*, size_t, int)> recv{"recv"};
inline real_fn<ssize_t(int, void*, size_t, int, sockaddr*, socklen_t*)> recvfrom{"recvfrom"};
inline real_fn<ssize_t(int, msghdr*, int)> recvmsg{"recvmsg"};
inline real_fn<ssize_t(int, const void*, size_t)> write{"write"};
inline real_fn<ssize_t(int, const iovec*, int)> writev{"writev"};
inline real_fn<ssize_t(int, const void*, size_t, int)> send{"send"};
inline real_fn<ssize_t(int, const void*, size_t, int, const sockaddr*, socklen_t)> sendto{"sendto"};
inline real_fn<ssize_t(int, const msghdr*, int)> sendmsg{"sendmsg"};
inline real_fn<int(pollfd*, nfds_t, int)> poll{"poll"};
inline real_fn<int(pollfd*, nfds_t, const timespec*, const sigset_t*)> ppoll{"ppoll"};
inline real_fn<int(int, fd_set*, fd_set*, fd_set*, timeval*)> select{"select"};
inline real_fn<int(int, fd_set*, fd_set*, fd_set*, const timespec*, const sigset_t*)> pselect{"pselect"};
inline real_fn<int(int, epoll_event*, int, int)> epoll_wait{"epoll_wait"};
inline real_fn<int(int, epoll_event*, int, int, const sigset_t*)> epoll_pwait{"epoll_pwait"};
inline real_fn<int(const timespec*, timespec*)> nanosleep{"nanosleep"};
inline real_fn<int(clockid_t, int, const timespec*, timespec*)> clock_nanosleep{"clock_nanosleep"};
inline real_fn<int(useconds_t)> usleep{"usleep"};
inline real_fn<unsigned(unsigned)> sleep{"sleep"};
inline real_fn<int(int, int, ...)> fcntl{"fcntl"};
inline real_fn<int(int, int, ...)> fcntl64{"fcntl64"};
inline real_fn<int(int, unsigned long, ...)> ioctl{"ioctl"};
inline real_fn<int(int, int, int, const void*, socklen_t)> setsockopt{"setsockopt"};
inline real_fn<int(int)> close{"close"};
inline real_fn<int(int)> dup{"dup"};
inline real_fn<int(int, int)> dup2{"dup2"};
inline real_fn<int(int, int, int)> dup3{"dup3"};
inline real_fn<int(int*)> pipe{"pipe"};
inline real_fn<int(int*, int)> pipe2{"pipe2"};
inline real_fn<int(const char*, const char*, const addrinfo*, addrinfo**)> getaddrinfo{"getaddrinfo"};
inline real_fn<hostent*(const char*)> gethostbyname{"gethostbyname"};
inline real_fn<int(const char*, hostent*, char*, size_t, hostent**, int*)> gethostbyname_r{"gethostbyname_r"};
inline real_fn<hostent*(const char*, int)> gethostbyname2{"gethostbyname2"};
inline real_fn<int(const char*, int, hostent*, char*, size_t, hostent**, int*)> gethostbyname2_r{"gethostbyname2_r"};

}  // namespace spindle::hook_detail::real
