// A small task queue with a fixed number of workers.
export interface Task {
  taskId: number;
  taskName: string;
  run: () => Promise<void>;
}

export class TaskQueue {
  private readonly queue: Task[] = [];
  private activeCount = 0;

  constructor(private readonly maxWorkers: number) {}

  addTask(task: Task): void {
    this.queue.push(task);
    this.startNextTask();
  }

  getQueueSize(): number {
    return this.queue.length;
  }

  private startNextTask(): void {
    if (this.activeCount >= this.maxWorkers) {
      return;
    }
    const task = this.queue.shift();
    if (!task) {
      return;
    }
    this.activeCount += 1;
    task.run().finally(() => {
      this.activeCount -= 1;
      this.startNextTask();
    });
  }
}
