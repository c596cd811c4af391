@echo off
rem setup_pgbouncer.bat: start the pooler for the Django app (Windows, Docker Desktop).
rem   1. creates .env from the template if it is missing, and stops until the password is set
rem   2. refuses the placeholder password
rem   3. builds and starts the container (docker-compose-pgbouncer.yml, service pgbouncer)
rem   4. waits until it is healthy, then prints how to connect
rem Linux and WSL: scripts/setup_pgbouncer.sh does the same.
setlocal EnableExtensions EnableDelayedExpansion
cd /d "%~dp0.."
set "CONTAINER=ahsp_pgbouncer"
set "COMPOSE_FILE=docker-compose-pgbouncer.yml"

where docker >nul 2>&1
if errorlevel 1 (
    echo setup_pgbouncer: docker is not installed: install Docker Desktop
    exit /b 1
)
docker info >nul 2>&1
if errorlevel 1 (
    echo setup_pgbouncer: the Docker engine is not running: start Docker Desktop and try again
    exit /b 1
)
set "COMPOSE=docker-compose"
where docker-compose >nul 2>&1
if errorlevel 1 set "COMPOSE=docker compose"

rem 1. .env with the password (docker-compose reads POSTGRES_PASSWORD and PGBOUNCER_PORT from it)
if not exist ".env" (
    > ".env" echo # Read by docker-compose for docker-compose-pgbouncer.yml ^(see .env.pgbouncer for the settings^).
    >> ".env" echo # The PostgreSQL password of DATABASES_USER ^(postgres^):
    >> ".env" echo POSTGRES_PASSWORD=CHANGE_ME
    >> ".env" echo # The port Django connects to ^(Django's PORT setting^):
    >> ".env" echo PGBOUNCER_PORT=6432
    echo setup_pgbouncer: created .env from the template: put your PostgreSQL password in it, then run me again
    echo   edit .env: POSTGRES_PASSWORD=your_actual_password
    exit /b 1
)
set "PASSWORD="
set "PORT=6432"
for /f "usebackq eol=# tokens=1,* delims==" %%A in (".env") do (
    if /i "%%A"=="POSTGRES_PASSWORD" set "PASSWORD=%%B"
    if /i "%%A"=="PGBOUNCER_PORT" set "PORT=%%B"
)
set "DBUSER=postgres"
set "DBNAME=postgres"
if exist ".env.pgbouncer" for /f "usebackq eol=# tokens=1,* delims==" %%A in (".env.pgbouncer") do (
    if /i "%%A"=="DATABASES_USER" set "DBUSER=%%B"
    if /i "%%A"=="DATABASES_DBNAME" set "DBNAME=%%B"
)
if not defined PASSWORD (
    echo setup_pgbouncer: .env has no POSTGRES_PASSWORD: add a line POSTGRES_PASSWORD=your_actual_password
    exit /b 1
)
for %%P in (CHANGE_ME your_actual_password your_postgres_password changeme) do (
    if "!PASSWORD!"=="%%P" (
        echo setup_pgbouncer: POSTGRES_PASSWORD in .env is still the placeholder "%%P"
        echo   set it to the real password of the PostgreSQL user ^(DATABASES_USER in .env.pgbouncer^)
        exit /b 1
    )
)

rem A port taken by something else is the most common failure: say so before starting.
set "RUNNING="
for /f "usebackq delims=" %%R in (`docker inspect -f "{{.State.Running}}" %CONTAINER% 2^>nul`) do set "RUNNING=%%R"
if not "%RUNNING%"=="true" (
    netstat -ano | findstr /r /c:":%PORT% .*LISTENING" >nul 2>&1
    if not errorlevel 1 (
        echo setup_pgbouncer: port %PORT% is already in use by another program
        echo   find it: netstat -ano ^| findstr :%PORT%   then: taskkill /PID ^<pid^> /F
        echo   or use another port: PGBOUNCER_PORT=6433 in .env ^(and in Django's settings^)
        exit /b 1
    )
)

rem 2. build and start
echo Building and starting %CONTAINER% ...
%COMPOSE% -f %COMPOSE_FILE% up -d --build pgbouncer
if errorlevel 1 (
    echo setup_pgbouncer: docker-compose failed: see the messages above
    exit /b 1
)

rem 3. wait until healthy (2 minutes at most)
set /a TRIES=0
:wait
set "STATE="
for /f "usebackq delims=" %%S in (`docker inspect -f "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}" %CONTAINER% 2^>nul`) do set "STATE=%%S"
if "%STATE%"=="" goto stopped
if "%STATE%"=="running healthy" goto healthy
if "%STATE:~0,6%"=="exited" goto stopped
if "%STATE:~0,10%"=="restarting" goto stopped
set /a TRIES+=1
if %TRIES% geq 60 (
    docker logs --tail 20 %CONTAINER%
    echo setup_pgbouncer: the container did not become healthy within 2 minutes
    exit /b 1
)
timeout /t 2 /nobreak >nul
goto wait

:stopped
docker logs --tail 20 %CONTAINER%
echo setup_pgbouncer: the container stopped: the lines above say why; fix .env.pgbouncer or .env and run me again
exit /b 1

:healthy
echo.
echo The pooler is up: %CONTAINER%, listening on port %PORT%.
echo.
echo   Connect ^(password: POSTGRES_PASSWORD from .env^):
echo     psql -h localhost -p %PORT% -U %DBUSER% -d %DBNAME%
echo   Admin console and pool statistics:
echo     docker exec -it %CONTAINER% psql -h localhost -p 6432 -U %DBUSER% -d pgbouncer    ^(then: SHOW POOLS;^)
echo   Logs:
echo     docker logs %CONTAINER%
echo   Django settings ^(transaction pooling^):
echo     'PORT': '%PORT%', 'CONN_MAX_AGE': 0, 'DISABLE_SERVER_SIDE_CURSORS': True
echo   Check everything ^(Git Bash or WSL^):
echo     bash scripts/verify_pgbouncer.sh
endlocal
exit /b 0
