/* The sandbox ("pause") process of a pod on BeamHub's real test node.
 *
 * containerd starts one per pod to hold its namespaces.  The usual image comes from
 * registry.k8s.io, which these machines cannot reach, so realnode.py compiles this file
 * statically and imports it as a one-file image.  It sleeps until told to stop and reaps
 * the zombies that end up with it as PID 1 of the pod's PID namespace (when shared).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &on_stop, NULL);
    sigaction(SIGTERM, &on_stop, NULL);
    sigaction(SIGCHLD, &on_child, NULL);
    for (;;) pause();
    return EXIT_SUCCESS;
}
