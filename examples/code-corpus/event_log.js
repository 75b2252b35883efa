// Keep the last events in a ring buffer and render them as a list.
class EventLog {
  constructor(maxEvents = 100) {
    this.maxEvents = maxEvents;
    this.events = [];
  }

  addEvent(eventName, eventData) {
    this.events.push({ eventName, eventData, time: Date.now() });
    if (this.events.length > this.maxEvents) {
      this.events.shift();
    }
  }

  clearEvents() {
    this.events = [];
  }

  renderEventList() {
    return this.events
      .map((event) => `<li>${event.eventName}</li>`)
      .join("\n");
  }
}

module.exports = { EventLog };
