# trustgate container image: a static binary on distroless, non-root, data in /data.
#   docker build -t trustgate .
#   docker run -p 8080:8080 -v trustgate-data:/data trustgate
# The first build compiles SpiceDB into the binary and takes a few minutes.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY sdk/go.mod sdk/go.sum* ./sdk/
RUN go mod download
COPY . .
ARG VERSION=dev
# modernc.org/sqlite is pure Go: CGO off gives a static binary that runs on distroless/static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/trustgate ./cmd/trustgate \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
# distroless/static carries the CA certificates (/etc/ssl/certs) and the nonroot user (65532).
COPY --from=build /out/trustgate /usr/local/bin/trustgate
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV TRUSTGATE_LISTEN=0.0.0.0:8080 \
    TRUSTGATE_DATA_DIR=/data \
    TRUSTGATE_METRICS_LISTEN=0.0.0.0:9464
VOLUME ["/data"]
EXPOSE 8080 9464
# distroless has no shell and no curl: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/trustgate", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/trustgate"]
CMD ["serve"]
