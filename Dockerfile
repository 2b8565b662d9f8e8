# Build stage: durable-rules is a C source distribution, so wheels are built where a
# compiler is; the runtime stage gets the wheels and no compiler.
FROM python:3.12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alongside alongside
COPY contracts contracts
COPY runtime runtime
COPY services services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels \
 && groupadd --system --gid 10001 alongside \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --create-home alongside
WORKDIR /app
COPY rules rules
# The uid and gid docker-compose.yml gives every secret (tests/unit/test_deploy_files.py).
USER 10001:10001
ENV ALONGSIDE_LOG_JSON=true \
    ALONGSIDE_RULES_DIR=/app/rules \
    ALONGSIDE_STATE_DIR=/tmp/alongside
ENTRYPOINT ["alongside"]
