//! The job system through HTTP (issue 14): the routes' shapes and guards in-process, jobs
//! delivered to a real local receiver, dead letters and their redrives, and real server
//! processes sharing one database (a SIGKILLed worker, schedules, metrics, SIGTERM).

mod app;
mod delivery;
mod input;
mod processes;
mod receiver;
mod routes;
